"""Size guard of the developers' guide: no file over 400 lines, no function over 60 lines, in dispatcher/ and
the add-on, except where a comment says why (``# long: reason`` on the line of the ``def``/``class`` or just
above it; for a file, ``# long-file: reason`` in its first 30 lines)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def sources() -> list[Path]:
    found = sorted((ROOT / "dispatcher").rglob("*.py"))
    for folder in ("operators", "ui"):
        found += sorted((ROOT / folder).rglob("*.py"))
    return found + sorted(ROOT.glob("*.py"))


def has_reason(lines: list[str], lineno: int) -> bool:
    """A ``# long:`` comment on the definition's line (lineno is 1-based) or the line above it."""
    return any("# long:" in lines[index] for index in (lineno - 1, lineno - 2) if 0 <= index < len(lines))


def long_functions(path: Path) -> list[tuple[str, int, int]]:
    """(name, line, length) of each function over the limit with no ``# long:`` reason."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - first + 1
            if length > MAX_FUNCTION_LINES and not has_reason(lines, node.lineno):
                found.append((node.name, node.lineno, length))
    return found


def long_files() -> list[str]:
    found = []
    for path in sources():
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > MAX_FILE_LINES and not any("# long-file:" in line for line in lines[:30]):
            found.append(f"{path.relative_to(ROOT)} ({len(lines)} lines)")
    return found


def test_the_guard_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{index} = {index}" for index in range(MAX_FUNCTION_LINES))
    plain = tmp_path / "plain.py"
    plain.write_text(f"def f():\n{body}\n")
    assert [name for name, _line, _length in long_functions(plain)] == ["f"]
    excused = tmp_path / "excused.py"
    excused.write_text(f"# long: one table, split it and it reads worse\ndef f():\n{body}\n")
    assert long_functions(excused) == []


def test_no_file_over_400_lines():
    assert long_files() == []


def test_no_function_over_60_lines():
    found = [f"{path.relative_to(ROOT)}:{line} {name} ({length} lines)"
             for path in sources() for name, line, length in long_functions(path)]  # fmt: skip
    assert found == []
