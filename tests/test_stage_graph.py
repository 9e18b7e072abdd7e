"""dvc.yaml against the code: every stage depends on every project file it runs.

For each stage the test follows its ``python -m module`` command through the
project's own imports (transitively, by parsing the source) and checks that each
module file, and each data file a module loads next to itself, is covered by one
of the stage's ``deps`` (a file or a folder). A stale model can then never be
reused after a change to code that built it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "training", "serving")
# Data files a module reads from its own folder (not visible as imports).
MODULE_DATA = {"pipeline/actors.py": ["pipeline/actors.yaml"]}


def dvc_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


def substitute(text: str) -> str:
    values = params()

    def value(match: re.Match) -> str:
        found = values
        for part in match.group(1).split("."):
            found = found[part]
        return str(found)

    return re.sub(r"\$\{([\w.]+)\}", value, text)


def module_file(name: str) -> Path | None:
    path = ROOT / Path(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def project_imports(path: Path) -> set[str]:
    """Project modules imported by the file at ``path`` (any depth in the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] in PACKAGES and module_file(name) is not None:
                found.add(name)
    return found


def closure(module: str) -> set[str]:
    """Files (relative to the repo) that running ``python -m module`` executes or loads."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = module_file(name)
        if path is None:
            continue
        rel = path.relative_to(ROOT).as_posix()
        if rel in seen:
            continue
        seen.add(rel)
        todo += project_imports(path)
    for rel in list(seen):
        seen.update(MODULE_DATA.get(rel, []))
    return {rel for rel in seen if not rel.endswith("__init__.py")}


def covered(rel: str, deps: list[str]) -> bool:
    return any(rel == dep or rel.startswith(dep.rstrip("/") + "/") for dep in deps)


STAGES = sorted(dvc_stages())


@pytest.mark.parametrize("stage", STAGES)
def test_stage_depends_on_every_project_file_it_runs(stage):
    spec = dvc_stages()[stage]
    command = substitute(spec["cmd"]).split()
    assert command[:2] == ["python", "-m"], f"{stage}: cmd must be `python -m module ...`"
    deps = [substitute(dep) for dep in spec.get("deps", [])]
    missing = sorted(rel for rel in closure(command[2]) if not covered(rel, deps))
    assert not missing, f"stage {stage} runs {missing} but dvc.yaml does not list them as deps"


def test_closure_follows_imports_transitively():
    """The checker itself: train reaches labels.py only through other modules."""
    files = closure("training.train")
    assert "training/train.py" in files
    assert "pipeline/labels.py" in files  # via pipeline.formatting and others
    assert "pipeline/actors.yaml" in files  # a module's data file


def test_training_never_imports_serving():
    for path in (ROOT / "training").glob("*.py"):
        assert not any(name.startswith("serving") for name in project_imports(path)), path


def test_serving_never_imports_training():
    for path in (ROOT / "serving").glob("*.py"):
        assert not any(name.startswith("training") for name in project_imports(path)), path
