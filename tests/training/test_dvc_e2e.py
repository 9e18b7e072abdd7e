"""`dvc repro` end to end on a copy of the repository with tiny data and tiny params.

Every stage runs as dvc.yaml says, each in its own `python` process (the venv's,
through PATH), with the embedded MLflow store and a private BentoML home. A second
`dvc repro` must find every stage up to date.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
# What the pipeline needs; outputs (dvc.lock, data/prepared, metrics, reports, models)
# and the real corpus stay behind.
COPIED = (
    "pyproject.toml", "params.yaml", "dvc.yaml", ".gitignore", ".dvcignore", ".dvc/",
    "pipeline/", "training/", "serving/", "seeds/",
)  # fmt: skip
REPRO_TIMEOUT_S = 420
METRICS_FILES = (
    "data/prepared/report.json",
    "reports/seed/seed_metrics.json",
    "reports/baseline/baseline_metrics.json",
    "metrics/train.json",
    "metrics/behaviour.json",
    "metrics/export.json",
    "metrics/registration.json",
    "metrics/handoff.json",
)


def project_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files of the repository that the copy needs."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    return [name for name in listed if name.startswith(COPIED) and (REPO_ROOT / name).is_file()]


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory, tiny) -> Path:
    root = tmp_path_factory.mktemp("dvc-e2e") / "repo"
    files = project_files()
    assert "dvc.yaml" in files and "training/train.py" in files
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / name, root / name)
    shutil.rmtree(root / "data", ignore_errors=True)
    tiny.write_data(root, tiny.write_params(root))
    if not (root / ".dvc" / "config").is_file():
        subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    tiny.git_commit_all(root)
    return root


def repro_env(bentoml_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        BENTOML_HOME=str(bentoml_home),
        BENTOML_DO_NOT_TRACK="True",
        MLFLOW_DISABLE_TELEMETRY="true",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        DVC_NO_ANALYTICS="1",
    )
    env.pop("VIRTUAL_ENV", None)
    return env


def dvc_repro(root: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "repro"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=REPRO_TIMEOUT_S,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


@pytest.fixture(scope="module")
def repro(copy: Path) -> dict:
    home = copy.parent / "bentoml"
    env = repro_env(home)
    first = dvc_repro(copy, env)
    second = dvc_repro(copy, env)
    return {"first": first, "second": second, "home": home}


def test_first_repro_runs_every_stage(copy, repro, tiny):
    for stage in tiny.stages:
        assert f"Running stage '{stage}'" in repro["first"], repro["first"]
    for path in METRICS_FILES:
        assert (copy / path).is_file(), path
    assert 0.0 <= json.loads((copy / "metrics/train.json").read_text())["validation_macro_f1"] <= 1
    lock = (copy / "dvc.lock").read_text()
    for stage in tiny.stages:
        assert f"  {stage}:" in lock


def test_second_repro_runs_nothing(repro, tiny):
    assert "Running stage" not in repro["second"], repro["second"]
    for stage in tiny.stages:
        assert f"Stage '{stage}' didn't change, skipping" in repro["second"], repro["second"]


def test_registered_champion(copy, repro, tiny):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{copy / 'mlflow.db'}")
    version = client.get_model_version_by_alias("stance-classifier", "champion")
    run_id = json.loads((copy / "models/stance/mlflow_run.json").read_text())["run_id"]
    assert version.run_id == run_id
    record = json.loads((copy / "metrics/registration.json").read_text())
    assert record["alias"] == "champion" and str(record["version"]) == str(version.version)
    run = client.get_run(run_id)
    assert run.data.tags["git_commit"] == tiny.head(copy)
    assert run.info.artifact_uri.startswith((copy / "mlartifacts").as_uri())


def test_champion_in_bentoml_store(copy, repro, tiny):
    from pipeline.lineage import file_md5
    from serving.store import load_model

    record = json.loads((copy / "metrics/registration.json").read_text())
    handoff = json.loads((copy / "metrics/handoff.json").read_text())
    with tiny.bentoml_store_at(repro["home"]):
        path, metadata = load_model(handoff["bento_tag"])
        assert (path / "config.json").is_file()
    assert metadata["mlflow_run_id"] == record["run_id"]
    assert metadata["registry_version"] == str(record["version"])
    assert metadata["training_data_md5"] == file_md5(copy / "data/prepared/train.jsonl")
