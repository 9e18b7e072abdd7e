"""DVC stage `register`: registry version and champion/challenger alias.

The new version becomes `champion` only if it passes the promotion gate (a floor on
``register.decision_metric``, seed macro-F1, and minimum behaviour-suite pass rates,
all in params.yaml `register`) and its decision metric is at least the current
champion's; otherwise it is the `challenger`. The registration record says why, and
names the champion's version and run (none while no version has passed the gate),
which the `handoff` stage (serving/handoff.py) puts into the BentoML model store.

Every version describes itself: a one-line description (seed and validation macro-F1,
base model, corpus md5) and tags for the key metrics (macro and per-class F1, ECE
before and after calibration, behaviour pass rates), the corpus and training-data
md5, git commit, DVC experiment and base model. What serves it (backend, precision,
size) is added by the `handoff` stage, which owns the servable directory. This stage's
params go to the training run, like every stage's.

When `train` could not log to its run after training (the tracking server went away),
this stage logs what it left beside the model first (training.train_log), so the
model on disk is registered without training it again.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipeline import tracking
from pipeline.atomic import write_json
from pipeline.config import StrictParams, load_section, require
from pipeline.labels import STANCES
from pipeline.lineage import flatten, short
from training import train_log

logger = logging.getLogger(__name__)

CHAMPION, CHALLENGER = tracking.CHAMPION, "challenger"
# Behaviour metrics as the behaviour stage logs them to the run (training.behaviour).
BEHAVIOUR_TESTS = ("mft", "inv", "dir")
BEHAVIOUR_METRIC = "behaviour_{}_pass_rate"
BEHAVIOUR_CASES = "behaviour_{}_cases"
WILSON_Z = 1.96  # 95%
RULE_METRIC = re.compile(r"^behaviour_mft_(rule_\w+)_pass_rate$")
# The run's metrics a registered version carries as tags (those the run has).
VERSION_METRICS = (
    "seed_macro_f1",
    "validation_macro_f1",
    *(f"{split}_{stance}_f1" for split in ("seed", "validation") for stance in STANCES),
    *(f"{split}_ece{kind}" for split in ("seed", "validation") for kind in ("", "_uncalibrated")),
    "behaviour_pass_rate",
    *(BEHAVIOUR_METRIC.format(test) for test in BEHAVIOUR_TESTS),
)
# Version tags taken from the run: tag name -> run param (p) or run tag (t) it copies.
RUN_LINEAGE = {
    "corpus_md5": ("p", "corpus_md5"),
    "train_data_md5": ("p", "train_data_md5"),
    "base_model": ("p", "train.base_model"),
    tracking.GIT_COMMIT_TAG: ("t", tracking.GIT_COMMIT_TAG),
    tracking.EXP_TAG: ("t", tracking.EXP_TAG),
}


class BehaviourThresholds(StrictParams):
    """Minimum behaviour-suite pass rates: per test type, and for every MFT rule."""

    mft: float
    inv: float
    dir: float
    per_rule: float

    def check(self) -> None:
        for name, value in self.model_dump().items():
            require(
                0 <= value <= 1, f"register.min_behaviour_pass_rate.{name}", "must be in [0, 1]"
            )


class RegisterParams(StrictParams):
    decision_metric: str  # a metric of the training run; higher is better
    min_decision_metric: float  # promotion gate: never champion below this
    min_behaviour_pass_rate: BehaviourThresholds  # promotion gate

    def check(self) -> None:
        require(bool(self.decision_metric.strip()), "register.decision_metric", "must not be empty")


def wilson_upper(rate: float, cases: int, z: float = WILSON_Z) -> float:
    """Upper end of the Wilson score interval of a pass rate over ``cases`` cases."""
    if cases <= 0:
        return 0.0
    centre = rate + z * z / (2 * cases)
    spread = z * math.sqrt(rate * (1 - rate) / cases + z * z / (4 * cases * cases))
    return min(1.0, (centre + spread) / (1 + z * z / cases))


def gate_failures(
    metrics: dict[str, float], decision_metric: str, floor: float, minimum: BehaviourThresholds
) -> list[str]:
    """Why the run's metrics bar it from `champion` (empty: the gate is passed).

    A metric the run lacks fails the gate: a model that was not tested is not promoted.
    A behaviour test type fails when its pass rate is below the threshold beyond sampling
    error: the upper end of its 95% Wilson interval lies under the threshold. (The suites
    are small: INV has 40 cases, 2.5 points each. Three models of one pipeline, trained
    on corpora 9 labels apart, scored INV 0.900, 0.975 and 0.875, so a point threshold
    decided promotion by a single case.) The seed floor and the per-rule floor stay
    point thresholds.
    """
    failures = []
    if decision_metric not in metrics:
        failures.append(f"{decision_metric} missing from the run")
    elif metrics[decision_metric] < floor:
        failures.append(
            f"{decision_metric} {metrics[decision_metric]:.3f} < floor {floor:.3f} "
            "(register.min_decision_metric)"
        )
    for test in BEHAVIOUR_TESTS:
        key, lowest = BEHAVIOUR_METRIC.format(test), getattr(minimum, test)
        cases_key = BEHAVIOUR_CASES.format(test)
        if key not in metrics or cases_key not in metrics:
            failures.append(f"{key} or {cases_key} missing from the run (behaviour stage)")
            continue
        rate, cases = metrics[key], round(metrics[cases_key])
        upper = wilson_upper(rate, cases)
        if upper < lowest:
            failures.append(
                f"behaviour {test} pass rate {rate:.3f} ({round(rate * cases)} of {cases}) is "
                f"below {lowest:.3f} beyond sampling error, 95% upper bound {upper:.3f} "
                f"(register.min_behaviour_pass_rate.{test})"
            )
    for key in sorted(metrics):
        rule = RULE_METRIC.match(key)
        if rule and metrics[key] < minimum.per_rule:
            failures.append(
                f"behaviour mft {rule.group(1)} pass rate {metrics[key]:.3f} < "
                f"{minimum.per_rule:.3f} (register.min_behaviour_pass_rate.per_rule)"
            )
    return failures


@dataclass(frozen=True)
class Decision:
    alias: str
    reason: str


def decide_alias(
    new_score: float,
    champion_score: float | None,
    failures: list[str] | tuple = (),
    metric: str = "score",
) -> Decision:
    """`champion` if the gate is passed and there is no champion yet or the new score is
    at least the champion's (ties go to the newer model); else `challenger`."""
    if failures:
        return Decision(CHALLENGER, "promotion gate failed: " + "; ".join(failures))
    if champion_score is None:
        return Decision(CHAMPION, "gate passed; no champion yet")
    verdict = ">=" if new_score >= champion_score else "<"
    return Decision(
        CHAMPION if verdict == ">=" else CHALLENGER,
        f"gate passed; {metric} {new_score:.3f} {verdict} champion's {champion_score:.3f}",
    )


def version_tags(
    metrics: dict[str, float],
    params: dict[str, str],
    run_tags: dict[str, str],
) -> dict[str, str]:
    """The registry version's tags: key metrics (4 decimals) and lineage."""
    tags = {key: f"{metrics[key]:.4f}" for key in VERSION_METRICS if key in metrics}
    for tag, (kind, key) in RUN_LINEAGE.items():
        value = (params if kind == "p" else run_tags).get(key)
        if value:
            tags[tag] = value
    experiment = tracking.dvc_experiment()  # this process runs in the experiment
    if experiment:
        tags[tracking.EXP_TAG] = experiment
    return tags


def version_description(metrics: dict[str, float], params: dict[str, str]) -> str:
    """One line: seed and validation macro-F1, base model, corpus md5 (n/a when absent)."""

    def figure(key: str) -> str:
        return f"{metrics[key]:.3f}" if key in metrics else "n/a"

    corpus = params.get("corpus_md5")
    return (
        f"seed macro-F1 {figure('seed_macro_f1')} | "
        f"validation macro-F1 {figure('validation_macro_f1')} | "
        f"base {params.get('train.base_model', 'n/a')} | "
        f"corpus {short(corpus) if corpus else 'n/a'}"
    )


def champion_score(client: MlflowClient, name: str, metric: str) -> tuple[str | None, float | None]:
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, None
    return version.version, client.get_run(version.run_id).data.metrics.get(metric)


def register(
    run_id: str,
    registered_model: str,
    model_uri: str,
    params: RegisterParams,
) -> dict:
    """Register the run's model, describe the version and move the right alias; the
    registration record."""
    client = MlflowClient()
    metric = params.decision_metric
    run = client.get_run(run_id)
    metrics = run.data.metrics
    if metric not in metrics:
        raise KeyError(f"run {run_id} has no metric {metric!r} (register.decision_metric)")
    new_score = metrics[metric]
    failures = gate_failures(
        metrics, metric, params.min_decision_metric, params.min_behaviour_pass_rate
    )
    previous_version, previous_score = champion_score(client, registered_model, metric)
    version = mlflow.register_model(model_uri, registered_model).version
    decision = decide_alias(new_score, previous_score, failures, metric)
    client.update_model_version(
        registered_model, version, description=version_description(metrics, run.data.params)
    )
    tags = version_tags(metrics, run.data.params, run.data.tags)
    for key, value in {**tags, "registration": decision.reason}.items():
        client.set_model_version_tag(registered_model, version, key, value)
    client.set_registered_model_alias(registered_model, decision.alias, version)
    champion_version = version if decision.alias == CHAMPION else previous_version
    log = logger.warning if failures else logger.info
    log(
        "registered %s v%s (%s %.3f) as %s: %s; champion is v%s",
        registered_model, version, metric, new_score, decision.alias, decision.reason,
        champion_version,
    )  # fmt: skip
    return {
        "registered_model": registered_model,
        "version": version,
        "alias": decision.alias,
        "reason": decision.reason,
        "gate": {
            "passed": not failures,
            "failures": failures,
            "min_decision_metric": params.min_decision_metric,
            "min_behaviour_pass_rate": params.min_behaviour_pass_rate.model_dump(),
        },
        metric: new_score,
        "champion_version": champion_version,  # None while no version has passed the gate
        "champion_run_id": (
            None
            if champion_version is None
            else client.get_model_version(registered_model, champion_version).run_id
        ),
        "run_id": run_id,
    }


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="registration record (JSON)")
    args = parser.parse_args(argv)
    params = load_section("register", RegisterParams)
    tracking_params = load_section("mlflow", tracking.MlflowParams)

    # A tracking server that does not answer fails the stage here, naming its URI.
    tracking.setup(tracking_params.experiment)
    run_id = tracking.read_run_id(args.model_dir)
    # What `train` could not log (its server went away during training), logged first.
    train_log.finish_pending(args.model_dir)
    with mlflow.start_run(run_id=run_id):
        tracking.log_params(flatten(params.model_dump(), "register"))
    record = register(
        run_id,
        tracking_params.registered_model,
        tracking.logged_model_uri(run_id),
        params,
    )
    write_json(args.out, record)


if __name__ == "__main__":
    main()
