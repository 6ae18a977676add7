"""How rendered text goes into the checked-in deploy files: a whole file under a header, or the
region between two marker lines of a hand-written file (at the markers' indentation)."""

from __future__ import annotations

HEADER = "# Generated from sendpromptly/processes.py by `make deploy-files`; do not edit.\n"
BEGIN = "# >>> generated from sendpromptly/processes.py by `make deploy-files`; do not edit"
END = "# <<< end of generated"


class MarkersMissing(Exception):
    """A hand-written file lacks the marker lines around its generated region."""


def whole_file(rendered: str) -> str:
    return HEADER + rendered


def into_region(text: str, rendered: str, where: str) -> str:
    """``text`` with the lines between its BEGIN and END markers replaced by ``rendered``."""
    lines = text.splitlines(keepends=True)
    begins = [number for number, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [number for number, line in enumerate(lines) if line.strip() == END]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise MarkersMissing(
            f"{where} needs exactly one line {BEGIN!r} and, after it, one line {END!r} around the part "
            "sendpromptly/processes.py renders: put them back where that part goes")
    marker = lines[begins[0]]
    indent = marker[: len(marker) - len(marker.lstrip())]
    body = "".join(indent + line if line.strip() else line for line in rendered.splitlines(keepends=True))
    return "".join(lines[: begins[0] + 1]) + body + "".join(lines[ends[0]:])
