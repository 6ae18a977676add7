"""Who may import what outside the product's own layers: a test module is never imported (shared
fixtures live in ``conftest.py``, shared helpers in ``tests/support``), the benchmarks and the
harness they share with the tests never import ``tests``, and the product imports none of them."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("sendpromptly", "common", "topics", "store", "channels", "api_gateway", "agents", "sinks")


def imported_modules(path: Path) -> Iterator[str]:
    """Every absolute module name ``path`` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def offenders(packages: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for package in packages:
        for path in sorted((REPO / package).rglob("*.py")):
            for module in imported_modules(path):
                if module.split(".")[0] in forbidden:
                    found.append(f"{path.relative_to(REPO)} imports {module}")
    return found


def test_no_module_imports_a_test_module() -> None:
    found = [f"{path.relative_to(REPO)} imports {module}"
             for package in ("tests", "bench", "harness") for path in sorted((REPO / package).rglob("*.py"))
             for module in imported_modules(path)
             if module.startswith("tests.") and module.split(".")[-1].startswith("test_")]
    assert found == [], "move what they share to tests/conftest.py or tests/support/"


def test_the_benchmarks_and_the_harness_do_not_import_the_tests() -> None:
    assert offenders(("bench", "harness"), ("tests",)) == []
    assert offenders(("harness",), ("bench",)) == []


def test_the_product_imports_neither_tests_nor_benchmarks_nor_the_harness() -> None:
    assert offenders(PRODUCT, ("tests", "bench", "harness")) == []


def test_the_check_sees_an_import_of_a_test_module(tmp_path: Path) -> None:
    module = tmp_path / "test_x.py"
    module.write_text("from tests.test_alerts import add_destination\nimport tests.support.api\n")
    assert list(imported_modules(module)) == ["tests.test_alerts", "tests.test_alerts.add_destination",
                                              "tests.support.api"]
