"""The champion/challenger rule and the promotion gate of the register stage, as
functions and end to end.

End to end: candidate runs with a small random-weight stance model and chosen
seed_macro_f1 and behaviour pass rates go through training.register.main against a
real MLflow SQLite store and a private BentoML store, one after another.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from training.register import (
    CHALLENGER,
    CHAMPION,
    BehaviourThresholds,
    decide_alias,
    gate_failures,
)

REGISTERED = "stance-classifier"
PASSING = {"behaviour_mft_pass_rate": 1.0, "behaviour_inv_pass_rate": 1.0}
PASSING |= {"behaviour_dir_pass_rate": 1.0}
# Suite sizes (the behaviour stage logs behaviour_<test>_cases beside each pass rate).
CASES = {"behaviour_mft_cases": 200.0, "behaviour_inv_cases": 40.0, "behaviour_dir_cases": 20.0}
PASSING |= CASES


@pytest.mark.parametrize(
    ("new", "current", "failures", "expected", "reason"),
    [
        (0.1, None, [], CHAMPION, "no champion yet"),
        (0.0, None, [], CHAMPION, "no champion yet"),
        (0.8, 0.7, [], CHAMPION, "score 0.800 >= champion's 0.700"),  # better
        (0.7, 0.7, [], CHAMPION, ">= champion's"),  # equal: the newer model wins ties
        (0.69, 0.7, [], CHALLENGER, "score 0.690 < champion's 0.700"),  # worse
        (0.0, 1.0, [], CHALLENGER, "< champion's"),
        # the gate overrides the comparison, with or without a champion
        (0.9, None, ["floor"], CHALLENGER, "promotion gate failed: floor"),
        (0.9, 0.7, ["a", "b"], CHALLENGER, "promotion gate failed: a; b"),
    ],
)
def test_decide_alias(new, current, failures, expected, reason):
    decision = decide_alias(new, current, failures)
    assert decision.alias == expected
    assert reason in decision.reason


THRESHOLDS = BehaviourThresholds(mft=0.8, inv=0.9, dir=0.7, per_rule=0.5)
GATE_CASES = {
    "all above": ({"seed_macro_f1": 0.85, **PASSING}, []),
    "exactly at every floor": (
        {
            "seed_macro_f1": 0.80,
            "behaviour_mft_pass_rate": 0.8,
            "behaviour_inv_pass_rate": 0.9,
            "behaviour_dir_pass_rate": 0.7,
            "behaviour_mft_rule_06_pass_rate": 0.5,
            **CASES,
        },
        [],
    ),
    "seed below floor": ({"seed_macro_f1": 0.79, **PASSING}, ["seed_macro_f1 0.790 < floor 0.800"]),
    # 35 of 40 (0.875) is within sampling error of 0.90 (upper bound 0.945): it passes;
    # 32 of 40 (0.80) is below it beyond sampling error (upper bound 0.895).
    "inv under the threshold within sampling error": (
        {"seed_macro_f1": 0.9, **PASSING, "behaviour_inv_pass_rate": 0.875},
        [],
    ),
    "inv below beyond sampling error": (
        {"seed_macro_f1": 0.9, **PASSING, "behaviour_inv_pass_rate": 0.80},
        ["behaviour inv pass rate 0.800 (32 of 40) is below 0.900 beyond sampling error"],
    ),
    "suite sizes missing": (
        {
            "seed_macro_f1": 0.9,
            "behaviour_mft_pass_rate": 1.0,
            "behaviour_inv_pass_rate": 1.0,
            "behaviour_dir_pass_rate": 1.0,
        },
        [f"behaviour_{t}_pass_rate or behaviour_{t}_cases missing" for t in ("mft", "inv", "dir")],
    ),
    "one rule below": (
        {
            "seed_macro_f1": 0.9,
            **PASSING,
            "behaviour_mft_rule_11_pass_rate": 0.4,
            "behaviour_mft_rule_12_pass_rate": 0.9,
            "behaviour_inv_date_pass_rate": 0.1,  # kinds have no per-kind floor
        },
        ["behaviour mft rule_11 pass rate 0.400 < 0.500"],
    ),
    "behaviour not run": (
        {"seed_macro_f1": 0.9},
        [f"behaviour_{t}_pass_rate or behaviour_{t}_cases missing" for t in ("mft", "inv", "dir")],
    ),
    "nothing evaluated": (
        {},
        ["seed_macro_f1 missing"] + [f"behaviour_{t}" for t in ["mft", "inv", "dir"]],
    ),
    "everything below": (
        {
            "seed_macro_f1": 0.5,
            "behaviour_mft_pass_rate": 0.5,
            "behaviour_inv_pass_rate": 0.5,
            "behaviour_dir_pass_rate": 0.3,
            "behaviour_mft_rule_stances_pass_rate": 0.2,
            **CASES,
        },
        [
            "seed_macro_f1 0.500 < floor",
            "behaviour mft pass rate",
            "behaviour inv pass rate",
            "behaviour dir pass rate",
            "behaviour mft rule_stances",
        ],
    ),
}


@pytest.mark.parametrize(("metrics", "expected"), GATE_CASES.values(), ids=GATE_CASES)
def test_gate_failures(metrics, expected):
    failures = gate_failures(metrics, "seed_macro_f1", 0.80, THRESHOLDS)
    assert len(failures) == len(expected), failures
    for failure, start in zip(failures, expected, strict=True):
        assert failure.startswith(start), (failure, start)


def test_gate_failures_name_the_params_key():
    failures = gate_failures({"seed_macro_f1": 0.1, **PASSING}, "seed_macro_f1", 0.8, THRESHOLDS)
    assert failures == ["seed_macro_f1 0.100 < floor 0.800 (register.min_decision_metric)"]
    low = {"seed_macro_f1": 0.9, **PASSING, "behaviour_dir_pass_rate": 0.0}
    failures = gate_failures(low, "seed_macro_f1", 0.8, THRESHOLDS)
    assert failures[0].endswith("(register.min_behaviour_pass_rate.dir)")


def test_gate_floor_follows_the_decision_metric():
    metrics = {"seed_macro_f1": 0.9, "seed_accuracy": 0.7, **PASSING}
    assert gate_failures(metrics, "seed_macro_f1", 0.8, THRESHOLDS) == []
    assert gate_failures(metrics, "seed_accuracy", 0.8, THRESHOLDS) == [
        "seed_accuracy 0.700 < floor 0.800 (register.min_decision_metric)"
    ]


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory, make_tiny_model) -> Path:
    """A 2-layer, 32-wide BERT stance model in the layout `train` saves."""
    return make_tiny_model(tmp_path_factory.mktemp("small-model") / "stance")


@pytest.fixture
def project(tiny_project: Path, tiny):
    """The tiny project with the tracking store and a private BentoML store in place."""
    from pipeline import tracking

    tracking.setup("stance-classifier")
    with tiny.bentoml_store_at(tiny_project / "bentoml"):
        yield tiny_project


def candidate(
    root: Path,
    small_model: Path,
    label: str,
    score: float,
    behaviour: float = 1.0,
    onnx: bool = False,
) -> tuple[Path, str]:
    """A model dir named like the real one, logged as a run with seed_macro_f1 = score
    and every behaviour pass rate = behaviour; with ``onnx``, also its ONNX export
    (beside it as ``stance-onnx``, and logged to the run as `export` does)."""
    import mlflow

    from pipeline import tracking
    from pipeline.mlflow_model import MODEL_DIR_ARTIFACT, StancePyfunc

    model_dir = root / "candidates" / label / "stance"
    shutil.copytree(small_model, model_dir)
    (model_dir / "candidate.txt").write_text(label)
    with mlflow.start_run(run_name=label) as run:
        mlflow.log_param("train_data_md5", f"md5-of-{label}")
        mlflow.log_param("train.base_model", "small-test-model")
        mlflow.log_metric("seed_macro_f1", score)
        for test in ("mft", "inv", "dir"):
            mlflow.log_metric(f"behaviour_{test}_pass_rate", behaviour)
            mlflow.log_metric(f"behaviour_{test}_cases", 40)
        mlflow.log_metric("behaviour_mft_rule_06_pass_rate", behaviour)
        mlflow.pyfunc.log_model(
            name="model",
            python_model=StancePyfunc(),
            artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
            pip_requirements=["mlflow"],
        )
        tracking.write_run_file(model_dir, run.info.run_id, run.info.experiment_id)
        if onnx:
            from training.export import ExportParams, write_servable

            params = ExportParams(
                opset=17, quantization="dynamic", per_channel=True, calibration_rows=1,
                fp32_down_projections=True, int8_embeddings=False, serve_precision="int8",
                max_f1_drop=0.01, min_label_agreement=0.97, batch_size=8,
            )  # fmt: skip
            onnx_dir = model_dir.parent / "stance-onnx"
            write_servable(model_dir, onnx_dir, params)
            mlflow.log_artifacts(str(onnx_dir), artifact_path=tracking.ONNX_ARTIFACT_DIR)
    return model_dir, run.info.run_id


def register(model_dir: Path, label: str, onnx_dir: Path | None = None) -> dict:
    """register, then the hand-off into the BentoML store: both records, merged."""
    from serving import handoff
    from training import register

    out = Path("metrics") / f"registration_{label}.json"
    register.main(["--model-dir", str(model_dir), "--out", str(out)])
    handed = Path("metrics") / f"handoff_{label}.json"
    onnx = ["--onnx-dir", str(onnx_dir)] if onnx_dir else []
    handoff.main(
        ["--registration", str(out), "--model-dir", str(model_dir), *onnx, "--out", str(handed)]
    )
    return {**json.loads(out.read_text()), **json.loads(handed.read_text())}


def stored(tag: str) -> tuple[str, dict]:
    """The candidate label of the weights stored under ``tag`` and their metadata."""
    from serving.store import load_model

    path, metadata = load_model(tag)
    return (path / "candidate.txt").read_text(), metadata


def test_champion_moves_only_on_higher_or_equal_score(project, small_model):
    from mlflow import MlflowClient

    client = MlflowClient()

    def alias_version(alias: str) -> str:
        return str(client.get_model_version_by_alias(REGISTERED, alias).version)

    # First version: no champion yet.
    a_dir, a_run = candidate(project, small_model, "a", 0.50)
    record = register(a_dir, "a")
    assert (record["alias"], str(record["version"])) == (CHAMPION, "1")
    assert alias_version(CHAMPION) == "1"
    label, metadata = stored(record["bento_tag"])
    assert label == "a" and metadata["mlflow_run_id"] == a_run
    assert metadata["registry_version"] == "1" and metadata["training_data_md5"] == "md5-of-a"

    # Lower score: challenger; champion stays, and the store gets the champion's weights.
    b_dir, b_run = candidate(project, small_model, "b", 0.40)
    record = register(b_dir, "b")
    assert (record["alias"], str(record["version"])) == (CHALLENGER, "2")
    assert str(record["champion_version"]) == "1"
    assert alias_version(CHAMPION) == "1"
    assert alias_version(CHALLENGER) == "2"
    assert client.get_model_version_by_alias(REGISTERED, CHALLENGER).run_id == b_run
    label, metadata = stored(record["bento_tag"])
    assert label == "a", "the store must keep serving the champion, not the losing model"
    assert metadata["mlflow_run_id"] == a_run and metadata["registry_version"] == "1"
    assert metadata["training_data_md5"] == "md5-of-a"

    # Equal score: the newer model takes over.
    c_dir, c_run = candidate(project, small_model, "c", 0.50)
    record = register(c_dir, "c")
    assert (record["alias"], str(record["version"])) == (CHAMPION, "3")
    assert alias_version(CHAMPION) == "3"
    label, metadata = stored(record["bento_tag"])
    assert label == "c" and metadata["mlflow_run_id"] == c_run
    assert metadata["registry_version"] == "3"

    # Higher score: champion moves again.
    d_dir, d_run = candidate(project, small_model, "d", 0.90)
    record = register(d_dir, "d")
    assert (record["alias"], str(record["version"])) == (CHAMPION, "4")
    assert client.get_model_version_by_alias(REGISTERED, CHAMPION).run_id == d_run
    label, metadata = stored("stance-classifier:latest")
    assert label == "d" and metadata["registry_version"] == "4"

    import bentoml

    assert len(bentoml.models.list("stance-classifier")) == 4


def test_store_serves_the_champions_onnx_export(project, small_model):
    """The hand-off stores the ONNX directory: the new model's own when it wins, the
    champion's, fetched from its MLflow run, when it loses; torch weights only for a
    champion whose run has no ONNX export."""
    from serving.store import load_model

    def served(tag: str) -> tuple[str, str, str]:
        path, metadata = load_model(tag)
        config = json.loads((path / "inference.json").read_text())
        assert (metadata["backend"], metadata["precision"]) == (
            config["backend"],
            config["precision"],
        )
        assert not list(path.glob("*.safetensors")) or config["backend"] == "torch"
        return (path / "candidate.txt").read_text(), config["backend"], config["precision"]

    # A champion from before the export stage: no ONNX in its run, torch is stored.
    old_dir, _ = candidate(project, small_model, "old", 0.50)
    record = register(old_dir, "old")
    assert served(record["bento_tag"]) == ("old", "torch", "fp32")

    # A better model with its export: its ONNX directory is stored.
    a_dir, _ = candidate(project, small_model, "a", 0.70, onnx=True)
    record = register(a_dir, "a", a_dir.parent / "stance-onnx")
    assert served(record["bento_tag"]) == ("a", "onnx", "int8")

    # A losing model: the champion's ONNX directory comes back from its MLflow run.
    b_dir, _ = candidate(project, small_model, "b", 0.40, onnx=True)
    record = register(b_dir, "b", b_dir.parent / "stance-onnx")
    assert record["alias"] == CHALLENGER
    assert served(record["bento_tag"]) == ("a", "onnx", "int8")


def test_gate_blocks_promotion_and_says_why(project, small_model, tiny):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    gate = {"mft": 0.8, "inv": 0.9, "dir": 0.8, "per_rule": 0.5}
    tiny.write_params(
        project, {"register": {"min_decision_metric": 0.6, "min_behaviour_pass_rate": gate}}
    )
    client = MlflowClient()

    # Below the seed floor, with no champion yet: still no champion, nothing stored.
    a_dir, _ = candidate(project, small_model, "a", 0.50)
    record = register(a_dir, "a")
    assert (record["alias"], record["champion_version"], record["bento_tag"]) == (
        CHALLENGER,
        None,
        None,
    )
    assert record["gate"]["passed"] is False
    assert record["gate"]["failures"] == [
        "seed_macro_f1 0.500 < floor 0.600 (register.min_decision_metric)"
    ]
    assert record["gate"]["min_behaviour_pass_rate"] == gate
    assert record["reason"].startswith("promotion gate failed: seed_macro_f1 0.500")
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias(REGISTERED, CHAMPION)

    # Passes the gate: the first champion.
    b_dir, b_run = candidate(project, small_model, "b", 0.70)
    record = register(b_dir, "b")
    assert (record["alias"], str(record["champion_version"])) == (CHAMPION, "2")
    assert record["gate"] == {**record["gate"], "passed": True, "failures": []}
    assert record["reason"] == "gate passed; no champion yet"

    # A better seed score but a weak behaviour suite: challenger, champion kept and served.
    c_dir, _ = candidate(project, small_model, "c", 0.95, behaviour=0.6)
    record = register(c_dir, "c")
    assert (record["alias"], str(record["champion_version"])) == (CHALLENGER, "2")
    assert [f.split(" beyond")[0] for f in record["gate"]["failures"]] == [
        "behaviour mft pass rate 0.600 (24 of 40) is below 0.800",
        "behaviour inv pass rate 0.600 (24 of 40) is below 0.900",
        "behaviour dir pass rate 0.600 (24 of 40) is below 0.800",
    ]
    assert client.get_model_version_by_alias(REGISTERED, CHAMPION).run_id == b_run
    label, _ = stored(record["bento_tag"])
    assert label == "b"

    # Passes and beats the champion.
    d_dir, d_run = candidate(project, small_model, "d", 0.90)
    record = register(d_dir, "d")
    assert (record["alias"], str(record["version"])) == (CHAMPION, "4")
    assert record["reason"] == "gate passed; seed_macro_f1 0.900 >= champion's 0.700"
    assert client.get_model_version_by_alias(REGISTERED, CHAMPION).run_id == d_run


def test_version_description_and_tags_from_the_run(monkeypatch):
    from training.register import version_description, version_tags

    metrics = {"seed_macro_f1": 0.81234, "validation_macro_f1": 0.79, "seed_hedging_f1": 0.5}
    metrics |= {"behaviour_mft_pass_rate": 0.9, "train_loss": 0.3}  # not a version metric
    params = {"train.base_model": "base-x", "corpus_md5": "0123456789abcdef" * 2 + ".dir"}
    params |= {"train_data_md5": "f" * 32}
    run_tags = {"git_commit": "abc123", "dvc_exp_name": "from-the-run", "model_type": "x"}
    assert version_description(metrics, params) == (
        "seed macro-F1 0.812 | validation macro-F1 0.790 | base base-x | corpus 01234567"
    )
    assert version_description({}, {}) == (
        "seed macro-F1 n/a | validation macro-F1 n/a | base n/a | corpus n/a"
    )
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    tags = version_tags(metrics, params, run_tags)
    assert tags == {
        "seed_macro_f1": "0.8123",
        "validation_macro_f1": "0.7900",
        "seed_hedging_f1": "0.5000",
        "behaviour_mft_pass_rate": "0.9000",
        "corpus_md5": params["corpus_md5"],
        "train_data_md5": "f" * 32,
        "base_model": "base-x",
        "git_commit": "abc123",
        "dvc_exp_name": "from-the-run",
    }
    # registered inside `dvc exp run`: the experiment this process runs in
    monkeypatch.setenv("DVC_EXP_NAME", "exp-now")
    assert version_tags(metrics, params, run_tags)["dvc_exp_name"] == "exp-now"


def test_registered_versions_describe_themselves(project, small_model):
    from mlflow import MlflowClient

    client = MlflowClient()
    a_dir, a_run = candidate(project, small_model, "a", 0.50)
    register(a_dir, "a")
    b_dir, b_run = candidate(project, small_model, "b", 0.40)
    register(b_dir, "b")

    loser = client.get_model_version(REGISTERED, "2")
    assert loser.description == (
        "seed macro-F1 0.400 | validation macro-F1 n/a | base small-test-model | corpus n/a"
    )
    assert loser.tags["registration"] == "gate passed; seed_macro_f1 0.400 < champion's 0.500"
    assert loser.tags["seed_macro_f1"] == "0.4000"
    assert loser.tags["train_data_md5"] == "md5-of-b"
    # handoff tagged the loser with its own servable directory (here: torch weights)
    assert (loser.tags["backend"], loser.tags["precision"]) == ("torch", "fp32")
    champion = client.get_model_version(REGISTERED, "1")
    assert champion.tags["registration"] == "gate passed; no champion yet"
    # handoff tagged what it stored (the champion, fetched back from its run)
    assert (champion.tags["backend"], champion.tags["precision"]) == ("torch", "fp32")
    # register's params went to each run, the gate thresholds as dotted keys
    params = client.get_run(b_run).data.params
    assert params["register.decision_metric"] == "seed_macro_f1"
    assert params["register.min_behaviour_pass_rate.per_rule"] == "0.0"
