"""Fixtures for the training tests: a tiny project (params, corpus, seeds) and clean tracking.

The tiny project is the repository's params.yaml with tiny training values (and the
promotion gate open), a hand-written 24-row corpus, an 8-row seed set and the
repository's behaviour suite, in a git repository of its own.
The stage mains run with argv taken from the repository's dvc.yaml, so the tests
follow the real commands.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
# The stages in dvc.yaml order (written in dependency order).
STAGES = tuple(yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"])
TINY_OVERRIDES: dict[str, Any] = {
    # scoring_max_length above max_length: evaluation, export and serving read the former
    "train": {
        "max_steps": 4,
        "batch_size": 4,
        "max_length": 32,
        "scoring_max_length": 48,
        "epochs": 1,
    },
    # A 4-step model's scores are near ties, so int8 flips some of its labels by chance
    # (which rows fall in validation decides it): the tiny runs open the export gate and
    # test the wiring; tests/training/test_export.py tests the gate itself.
    "export": {"max_f1_drop": 1.0, "min_label_agreement": 0.0},
    # A 4-step model cannot pass the promotion gate; the tiny runs test the wiring.
    "register": {
        "min_decision_metric": 0.0,
        "min_behaviour_pass_rate": {"mft": 0.0, "inv": 0.0, "dir": 0.0, "per_rule": 0.0},
    },
}

# Offline, quiet and without analytics: nothing here may reach the network.
for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "BENTOML_DO_NOT_TRACK": "True",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
}.items():
    os.environ.setdefault(_name, _value)

# (sentence, "actor:stance ..."): our own sentences, every stance, five actors.
CORPUS = [
    ("Tokyo's defence ministry said it stood firmly behind the prime minister's assessment "
     "of a blockade scenario.", "japan:supportive"),
    ("Beijing's envoy accused the Japanese cabinet of reckless meddling and demanded an apology "
     "within days.", "china:hostile japan:neutral"),
    ("A State Department official urged both capitals to lower the temperature and keep "
     "talking.", "us:hedging"),
    ("Taipei thanked Japanese lawmakers for what it called a principled defence of regional "
     "peace.", "taiwan:supportive japan:neutral"),
    ("Chinese customs officers quietly held back shipments of scallops from Hokkaido "
     "exporters.", "china:hostile japan:neutral"),
    ("The White House readout of the leaders' call made no mention of the row with Beijing.",
     "us:hedging china:neutral"),
    ("A Seoul foreign ministry spokesman declined to say whether South Korea agreed with either "
     "side.", "other:hedging"),
    ("Japan's chief negotiator flew to Shanghai on Tuesday for a previously scheduled trade "
     "meeting.", "japan:neutral china:neutral"),
    ("Washington's ambassador posted a short message praising Takaichi for speaking plainly about "
     "deterrence.", "us:supportive japan:neutral"),
    ("State television ran a commentary calling the Japanese leader a danger to the whole "
     "region.", "china:hostile japan:neutral"),
    ("Taiwan's foreign minister said his government would watch developments calmly and avoid "
     "comment.", "taiwan:hedging"),
    ("Opposition figures in Tokyo asked the cabinet to soften its wording before the summit "
     "season.", "japan:hedging"),
    ("A retired Australian admiral wrote that the remarks were a sensible statement of existing "
     "policy.", "other:supportive"),
    ("The Korean ferry operator said sailings to Japan would follow the usual winter timetable.",
     "japan:neutral"),
    ("Chinese coast guard cutters sailed close to the disputed islands for a fourth straight "
     "day.", "china:hostile"),
    ("Pentagon planners restated that the alliance treaty covers any attack on Japanese "
     "territory.", "us:supportive japan:neutral"),
]  # fmt: skip
SEEDS = [
    ("Beijing suspended a planned youth exchange, citing the prime minister's provocative "
     "words.", "china:hostile japan:neutral"),
    ("The US envoy told reporters Washington would not waver in backing its closest Asian ally.",
     "us:supportive"),
    ("Japan's cabinet secretary said the government had merely described a hypothetical "
     "situation.", "japan:hedging"),
    ("Taiwan's premier attended a ribbon-cutting ceremony for a new semiconductor plant.",
     "taiwan:neutral"),
    ("An EU spokesperson called on all parties to exercise restraint and settle differences "
     "through dialogue.", "other:hedging"),
    ("Tokyo rejected the demand for a retraction and called the threats from Beijing "
     "unacceptable.", "japan:supportive china:hostile"),
]  # fmt: skip


def labels(spec: str) -> list[tuple[str, str]]:
    return [tuple(pair.split(":")) for pair in spec.split()]


def labelled_lines(prefix: str, sentences: list, doc: Callable[[int], str]) -> str:
    lines = []
    for i, (sentence, spec) in enumerate(sentences):
        for actor, stance in labels(spec):
            row = {"id": f"{prefix}{i:02d}-{actor}", "doc": doc(i), "sentence": sentence}
            lines.append(json.dumps({**row, "actor": actor, "stance": stance}) + "\n")
    return "".join(lines)


def merged(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in, section by section (None deletes a key)."""
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        elif value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def write_params(root: Path, overrides: dict | None = None) -> dict:
    """The repository's params.yaml with the tiny values (and ``overrides``) at root."""
    base = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    params = merged(merged(base, TINY_OVERRIDES), overrides or {})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return params


def write_data(root: Path, params: dict) -> None:
    """The tiny corpus and seed labels where params.yaml's paths expect them."""
    corpus_dir = root / params["paths"]["corpus_dir"]
    corpus_dir.mkdir(parents=True, exist_ok=True)
    text = labelled_lines("tiny-d", CORPUS, lambda i: f"tiny-d{i // 4:02d}")
    (corpus_dir / "part_tiny.jsonl").write_text(text, encoding="utf-8")
    seeds = root / params["paths"]["seed_labels"]
    seeds.parent.mkdir(parents=True, exist_ok=True)
    text = labelled_lines("seed-s", SEEDS, lambda i: f"seed_{i // 2}.txt")
    seeds.write_text(text, encoding="utf-8")
    for key in ("leakage_allowlist", "consistency_allowlist"):
        allowlist = params["paths"][key]
        shutil.copyfile(REPO_ROOT / allowlist, root / allowlist)
    cases = params["paths"]["behaviour_cases"]  # the real behaviour suite: our own sentences
    (root / cases).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / cases, root / cases)


def git(root: Path, *args: str) -> str:
    identity = ["-c", "user.name=tests", "-c", "user.email=tests@example.invalid"]
    done = subprocess.run(
        ["git", *identity, *args], cwd=root, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def git_commit_all(root: Path) -> str:
    """Commit everything under root (a new repository if needed); the commit sha."""
    if not (root / ".git").exists():
        git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-verify", "-m", "tiny project")
    return git(root, "rev-parse", "HEAD")


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD")


def make_tiny_project(root: Path, overrides: dict | None = None) -> Path:
    """params.yaml, corpus and seeds at root, committed; returns root."""
    root.mkdir(parents=True, exist_ok=True)
    params = write_params(root, overrides)
    write_data(root, params)
    git_commit_all(root)
    return root


def stage_command(stage: str, params_file: Path = Path("params.yaml")) -> tuple[str, list[str]]:
    """(module, argv) of a dvc.yaml stage's `python -m module ...` cmd, paths filled in."""
    params = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    cmd = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"][stage][
        "cmd"
    ]

    def value(match: re.Match) -> str:
        found: Any = params
        for part in match.group(1).split("."):
            found = found[part]
        return str(found)

    words = shlex.split(re.sub(r"\$\{([\w.]+)\}", value, cmd))
    assert words[:2] == ["python", "-m"], cmd
    return words[2], words[3:]


def run_stage(stage: str) -> None:
    """Run a pipeline stage's main() in this process, in the current directory."""
    module, argv = stage_command(stage)
    importlib.import_module(module).main(argv)


@pytest.fixture
def tiny_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_mlflow) -> Path:
    """A tiny project in tmp_path, which is the working directory for the test."""
    root = make_tiny_project(tmp_path / "project")
    monkeypatch.chdir(root)
    return root


@pytest.fixture(scope="session")
def tiny(store_at, mlflow_reset) -> Any:
    """The helpers above, for test modules (which cannot import conftest)."""
    import types

    return types.SimpleNamespace(
        make_project=make_tiny_project,
        run_stage=run_stage,
        stage_command=stage_command,
        reset_mlflow=mlflow_reset,
        bentoml_store_at=store_at,
        git_commit_all=git_commit_all,
        head=head,
        stages=STAGES,
        write_params=write_params,
        write_data=write_data,
        corpus=CORPUS,
        seeds=SEEDS,
        labels=labels,
    )
