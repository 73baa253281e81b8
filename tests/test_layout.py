"""The rooms stay livable: no source file over 600 lines and no class over 400 (issue 9, "Must
hold"), so the next capability lands in a module of its own instead of growing one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "authchain"
MAX_FILE_LINES = 600
MAX_CLASS_LINES = 400
SOURCES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_source_file_is_over_600_lines_nor_any_class_over_400(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= MAX_FILE_LINES
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_CLASS_LINES, f"class {node.name} is {length} lines"


def test_the_layout_rule_sees_the_sources() -> None:
    assert len(SOURCES) > 50 and SRC / "authority" / "facade.py" in SOURCES
