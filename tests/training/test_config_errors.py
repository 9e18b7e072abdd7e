"""A bad params.yaml stops a stage before any work, with a message naming the key.

The prepared splits exist and are valid, so the only problem in each case is the
configuration; training and tracking are replaced by tripwires.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

import training.train
from pipeline import tracking
from pipeline.config import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")

TRAIN_CASES = {
    "wrong type": ({"train": {"batch_size": "sixteen"}}, "train.batch_size", "must be int"),
    "bool is not a number": ({"train": {"epochs": True}}, "train.epochs", "must be float"),
    "unknown key": ({"train": {"bogus": 3}}, "train.bogus", "unknown key"),
    "missing key": ({"train": {"learning_rate": None}}, "train.learning_rate", "missing key"),
    "out of range": ({"train": {"max_length": 4}}, "train.max_length", "[8, 512]"),
    "scoring length below training length": (
        {"train": {"max_length": 64, "scoring_max_length": 32}},
        "train.scoring_max_length",
        "in [train.max_length (64), 512]",
    ),
    "unknown pooling": ({"train": {"pooling": "max"}}, "train.pooling", "'cls' or 'marker'"),
    "ratio out of range": ({"train": {"warmup_ratio": 1.5}}, "train.warmup_ratio", "[0, 1)"),
    "zero max_steps": ({"train": {"max_steps": 0}}, "train.max_steps", "-1 or > 0"),
    "empty base model": ({"train": {"base_model": "  "}}, "train.base_model", "must not be empty"),
    "missing base model dir": (
        {"train": {"base_model": "./no/such/model"}},
        "train.base_model",
        "'./no/such/model' is not a directory",
    ),
    "hub id while offline": (
        {"train": {"base_model": "someone/some-model"}},
        "train.base_model",
        "HF_HUB_OFFLINE=1",
    ),
    "missing section": ({"mlflow": None}, "mlflow", "missing section"),
    "empty experiment": ({"mlflow": {"experiment": ""}}, "mlflow.experiment", "must not be empty"),
}


@pytest.fixture
def prepared(tiny_project: Path, tiny, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny project with its splits written, and tripwires on training and tracking."""
    tiny.run_stage("prepare")
    checkpoints = tiny_project.parent / "tmp"
    checkpoints.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(checkpoints))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def tripwire(*args, **kwargs):
        raise AssertionError("a bad configuration reached training or tracking")

    monkeypatch.setattr(training.train, "train", tripwire)
    monkeypatch.setattr(tracking, "setup", tripwire)
    return tiny_project


def assert_nothing_done(root: Path) -> None:
    assert not (root / "models").exists()
    assert not (root / "metrics").exists()
    assert not (root / "mlflow.db").exists()
    assert not list((root.parent / "tmp").glob("stance-checkpoints-*"))


@pytest.mark.parametrize(("overrides", "key", "message"), TRAIN_CASES.values(), ids=TRAIN_CASES)
def test_train_rejects_bad_config_before_training(prepared, tiny, overrides, key, message):
    tiny.write_params(prepared, overrides)
    module, argv = tiny.stage_command("train")
    assert module == "training.train"
    with pytest.raises(ConfigError) as raised:
        training.train.main(argv)
    assert key in str(raised.value)
    assert message in str(raised.value)
    assert_nothing_done(prepared)


def test_good_config_reaches_training(prepared, tiny):
    """The control case: with the tiny params.yaml as written, main gets to the tripwire."""
    _, argv = tiny.stage_command("train")
    with pytest.raises(AssertionError, match="reached training or tracking"):
        training.train.main(argv)


@pytest.mark.parametrize(
    ("stage", "overrides", "key"),
    [
        ("evaluate", {"evaluate": {"batch_size": 0}}, "evaluate.batch_size"),
        ("baseline", {"baseline": {"ngram_max": 7}}, "baseline.ngram_max"),
        ("register", {"register": {"decision_metric": ""}}, "register.decision_metric"),
        ("register", {"mlflow": {"registered_model": 5}}, "mlflow.registered_model"),
        ("register", {"register": {"min_decision_metric": "high"}}, "register.min_decision_metric"),
        (
            "register",
            {"register": {"min_behaviour_pass_rate": {"mft": 1.5}}},
            "register.min_behaviour_pass_rate.mft",
        ),
        (
            "register",
            {"register": {"min_behaviour_pass_rate": {"per_rule": None}}},
            "register.min_behaviour_pass_rate.per_rule",
        ),
        ("behaviour", {"behaviour": {"min_cases": 0}}, "behaviour.min_cases"),
        ("behaviour", {"behaviour": {"dir_margin": 1}}, "behaviour.dir_margin"),
    ],
)
def test_other_stages_reject_bad_config(prepared, tiny, stage, overrides, key):
    tiny.write_params(prepared, overrides)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        tiny.run_stage(stage)
    assert not (prepared / "mlflow.db").exists()
    assert not (prepared / "reports").exists()
