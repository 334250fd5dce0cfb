"""docs/design.md describes the code as it is: its module table lists every module of ``ww_ray/``."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_module_table_matches_the_package() -> None:
    listed = set(re.findall(r"^\| `(ww_ray/[\w/]+\.py)` \|", (REPO / "docs" / "design.md").read_text(), re.M))
    modules = {
        str(path.relative_to(REPO))
        for path in (REPO / "ww_ray").rglob("*.py")
        if not (path.name == "__init__.py" and path.stat().st_size == 0)
    }
    assert modules - listed == set(), "modules missing from docs/design.md's table"
    assert listed - modules == set(), "docs/design.md lists modules that do not exist"
