"""`dvc repro` end to end on a copy of the repository with tiny data and tiny params.

Every stage runs as dvc.yaml says, each in its own `python` process (the venv's,
through PATH), with the embedded MLflow store and a private BentoML home. A second
`dvc repro` must find every stage up to date. Then, with the results committed, one
`dvc exp run -S train.learning_rate=...`: its MLflow run and registry version carry the
experiment's name, `dvc plots show` / `dvc plots diff` read the per-epoch plots, and
scripts/compare_versions.py puts the two versions side by side.
"""

from __future__ import annotations

import csv
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
EXPERIMENT, EXP_LEARNING_RATE = "tiny-lr", "5e-05"
HISTORY = "reports/validation/epochs.csv"
METRICS_FILES = (
    "data/prepared/report.json",
    "reports/seed/seed_metrics.json",
    "reports/baseline/baseline_metrics.json",
    "metrics/train.json",
    "metrics/behaviour.json",
    "metrics/export.json",
    "metrics/registration.json",
    "metrics/handoff.json",
    "data/prepared/lineage.json",
    HISTORY,
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


def dvc(root: Path, env: dict[str, str], *args: str) -> str:
    """Run `dvc <args>` in root; its output (the test fails on a non-zero exit)."""
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
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
    first = dvc(copy, env, "repro")
    second = dvc(copy, env, "repro")
    return {"first": first, "second": second, "home": home, "env": env}


@pytest.fixture(scope="module")
def experiment(copy: Path, repro: dict, tiny) -> dict:
    """The repro's results committed (as a user would), then one DVC experiment."""
    tiny.git_commit_all(copy)
    baseline_rev = tiny.head(copy)
    output = dvc(
        copy,
        repro["env"],
        "exp", "run", "-n", EXPERIMENT, "-S", f"train.learning_rate={EXP_LEARNING_RATE}",
    )  # fmt: skip
    return {"output": output, "baseline_rev": baseline_rev, **repro}


def mlflow_client(copy: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{copy / 'mlflow.db'}")


def test_first_repro_runs_every_stage(copy, repro, tiny):
    for stage in tiny.stages:
        assert f"Running stage '{stage}'" in repro["first"], repro["first"]
    import yaml

    for path in METRICS_FILES:
        assert (copy / path).is_file(), path
    lock = yaml.safe_load((copy / "dvc.lock").read_text())
    assert set(tiny.stages) <= set(lock["stages"])
    # the corpus md5 prepare records is the one DVC records for the corpus directory
    corpus = next(d for d in lock["stages"]["prepare"]["deps"] if d["path"] == "data/corpus")
    lineage = json.loads((copy / "data/prepared/lineage.json").read_text())
    assert lineage["corpus_md5"] == corpus["md5"]
    # and the training data md5 on the run is the one dvc.lock records for train.jsonl
    outs = {o["path"]: o["md5"] for o in lock["stages"]["prepare"]["outs"]}
    run_id = json.loads((copy / "models/stance/mlflow_run.json").read_text())["run_id"]
    params = mlflow_client(copy).get_run(run_id).data.params
    assert params["train_data_md5"] == outs["data/prepared/train.jsonl"]
    assert params["corpus_md5"] == corpus["md5"]


def test_second_repro_runs_nothing(repro, tiny):
    assert "Running stage" not in repro["second"], repro["second"]
    for stage in tiny.stages:
        assert f"Stage '{stage}' didn't change, skipping" in repro["second"], repro["second"]


def test_registered_champion(copy, repro, tiny):
    client = mlflow_client(copy)
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


def test_experiment_runs_the_changed_stages(experiment, tiny):
    output = experiment["output"]
    for stage in ("train", "evaluate", "behaviour", "register", "handoff"):
        assert f"Running stage '{stage}'" in output, output
    for stage in ("prepare", "baseline"):
        assert f"Running stage '{stage}'" not in output, output


def test_experiment_name_on_mlflow_run_and_version(copy, experiment):
    client = mlflow_client(copy)
    experiment_id = client.get_experiment_by_name("stance-classifier").experiment_id
    runs = client.search_runs([experiment_id], f"tags.dvc_exp_name = '{EXPERIMENT}'")
    assert [r.info.run_name for r in runs] == ["fine-tune"]  # baseline did not re-run
    assert runs[0].data.params["train.learning_rate"] == EXP_LEARNING_RATE
    # the workspace model is the experiment's; its run is the tagged one
    run_id = json.loads((copy / "models/stance/mlflow_run.json").read_text())["run_id"]
    assert runs[0].info.run_id == run_id
    assert runs[0].data.tags["git_commit"] == experiment["baseline_rev"]
    version = client.get_model_version("stance-classifier", "2")
    assert version.run_id == run_id
    assert version.tags["dvc_exp_name"] == EXPERIMENT
    assert "dvc_exp_name" not in client.get_model_version("stance-classifier", "1").tags


def test_experiment_listed_by_dvc(copy, experiment):
    shown = json.loads(dvc(copy, experiment["env"], "exp", "show", "--json"))
    names = [exp.get("name") for baseline in shown for exp in (baseline.get("experiments") or [])]
    assert EXPERIMENT in names, shown


def test_epoch_plots_show_and_diff(copy, experiment):
    env = experiment["env"]
    shown = json.loads(dvc(copy, env, "plots", "show", "--json"))
    ids = set(shown["data"])
    assert {"validation macro-F1 per epoch", "loss per epoch"} <= ids, ids
    diff = json.loads(dvc(copy, env, "plots", "diff", "HEAD", EXPERIMENT, "--json"))
    (plot,) = diff["data"]["validation macro-F1 per epoch"]
    assert plot["revisions"] == ["HEAD", EXPERIMENT]
    points = plot["content"]["data"]["values"]
    assert {point["rev"] for point in points} == {"HEAD", EXPERIMENT}
    # the experiment's points are its own history file, which the workspace now holds
    with open(copy / HISTORY, newline="", encoding="utf-8") as handle:
        ours = [(row["epoch"], row["validation_macro_f1"]) for row in csv.DictReader(handle)]
    theirs = [(p["epoch"], p["validation_macro_f1"]) for p in points if p["rev"] == EXPERIMENT]
    assert theirs == ours


def test_compare_versions_side_by_side(copy, experiment):
    env = {**experiment["env"], "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts/compare_versions.py"), "--versions", "1", "2"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "## stance-classifier: v1 vs v2"
    assert f"| train.learning_rate | 0.0001 | {EXP_LEARNING_RATE} |" in lines
    assert any(line.startswith(f"| DVC experiment | — | {EXPERIMENT} |") for line in lines)
