"""Every stage writes its outs through pipeline/atomic.py, so a killed stage leaves no
partial file: no module a stage runs writes a file in place.

Looks for the usual in-place writers (``open(..., "w")``, ``Path.write_text`` /
``write_bytes``, ``json.dump``, ``DataFrame.to_csv``, ``savefig``) in the stage
modules; a writer whose target is the temporary path that ``pipeline.atomic.replacing``
hands out (named ``temp`` or ``staging`` by convention) is fine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGE_MODULES = sorted(
    [
        *(ROOT / "pipeline").glob("*.py"),
        *(ROOT / "training").glob("*.py"),
        ROOT / "serving" / "handoff.py",
        ROOT / "serving" / "store.py",
    ]
)
HELPER = ROOT / "pipeline" / "atomic.py"
WRITERS = {"write_text", "write_bytes", "dump", "to_csv", "to_json", "savefig"}
STAGED = {"temp", "staging"}


def names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def in_place_writes(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            mode = node.args[1] if len(node.args) > 1 else None
            mode = mode or next((k.value for k in node.keywords if k.arg == "mode"), None)
            writes = isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax+")
            target = node.args[0] if node.args else None
        elif isinstance(func, ast.Attribute) and func.attr in WRITERS:
            writes = True
            target = node.args[0] if func.attr in {"savefig", "dump"} and node.args else func
            if func.attr == "dump":
                target = node.args[1] if len(node.args) > 1 else None
        else:
            continue
        if writes and not (target is not None and names_in(target) & STAGED):
            found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


@pytest.mark.parametrize("path", [p for p in STAGE_MODULES if p != HELPER], ids=lambda p: p.name)
def test_stage_modules_write_no_file_in_place(path: Path) -> None:
    found = in_place_writes(path)
    assert not found, f"write through pipeline.atomic instead: {found}"


def test_the_check_finds_an_in_place_write(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import json\n"
        "def f(path, temp, figure, data):\n"
        "    path.write_text('x')\n"
        "    open(path, 'w')\n"
        "    json.dump(data, open(path, mode='a'))\n"
        "    figure.savefig(path)\n"
        "    figure.savefig(temp)\n"
        "    open(path)\n",
        encoding="utf-8",
    )
    lines = {int(found.split(":")[1]) for found in in_place_writes(sample, tmp_path)}
    assert lines == {3, 4, 5, 6}
