"""batch/ builds on pipeline/ only: it never imports training/ or serving/."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_batch_never_imports_training_or_serving():
    files = sorted((ROOT / "batch").glob("*.py"))
    assert files
    for path in files:
        bad = {n for n in imported(path) if n.split(".")[0] in ("training", "serving")}
        assert not bad, f"{path.name} imports {sorted(bad)}"
