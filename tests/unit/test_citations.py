"""Comments, docstrings and docs cite only what a user of the repository has: the design notes the
project was first planned from are not in it, so no file may send a reader there."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Spelled in two pieces so that this file does not cite it itself.
ABSENT = "DESIGN" + ".md"
NOT_OURS = {".git", ".venv", ".run", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis",
            "__pycache__", "build", "dist"}
TEXT = {".py", ".md", ".sql", ".yaml", ".yml", ".json", ".toml", ".env", ".sh", ".html", ".js", ".css",
        ".txt", ".lua", ".cfg", ".ini"}


def our_text_files() -> list[Path]:
    found = []
    for path in REPO.rglob("*"):
        parts = path.relative_to(REPO).parts
        if any(part in NOT_OURS or part.endswith(".egg-info") for part in parts) or not path.is_file():
            continue
        if path.suffix in TEXT or path.name in {"Dockerfile", "Makefile", ".dockerignore", "run"}:
            found.append(path)
    return found


def test_no_file_cites_the_design_notes_users_do_not_have() -> None:
    files = our_text_files()
    assert REPO / "README.md" in files and REPO / "agents" / "flow.py" in files
    citing = [str(path.relative_to(REPO)) for path in files if ABSENT in path.read_text(errors="replace")]
    assert citing == [], f"say the rule in our own words, or point to docs/ or the README, in: {citing}"
