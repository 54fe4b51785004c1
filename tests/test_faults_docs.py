"""docs/faults.md matches the tests: every test it names exists, and every fault test is named in it."""

import ast
import re

from farmtest import ROOT

FAULT_FILES = sorted(ROOT.glob("tests/test_faults_*.py")) + [
    ROOT / "tests/test_security.py",
    ROOT / "tests/test_soak.py",
]


def defined_tests(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def table_rows() -> list[str]:
    text = (ROOT / "docs" / "faults.md").read_text(encoding="utf-8")
    table = text.split("## Table", 1)[1].split("\n## ", 1)[0]
    return [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| Fault ")]


def test_the_fault_table_names_only_existing_tests_and_every_fault_test():
    rows = table_rows()
    assert len(rows) >= 20
    named = set()
    for row in rows:
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        assert len(cells) == 3 and cells[0] and cells[1], row
        references = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", cells[2])
        assert references, f"row without a test: {row}"
        for file, name in references:
            assert name in defined_tests(ROOT / file), f"{file}::{name} is named in docs/faults.md but does not exist"
            named.add((file, name))
    for path in FAULT_FILES:
        file = str(path.relative_to(ROOT))
        if path.name == "test_faults_docs.py":
            continue
        missing = {name for name in defined_tests(path) if (file, name) not in named}
        assert not missing, f"tests in {file} missing from docs/faults.md: {sorted(missing)}"
