"""DVC stage `register`: registry version and champion/challenger alias.

The new version becomes `champion` only if its score on ``register.decision_metric``
(seed macro-F1) is at least the current champion's; otherwise it is the
`challenger`. The registration record names the champion's version and run, which
the `handoff` stage (serving/handoff.py) puts into the BentoML model store.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipeline import tracking
from pipeline.config import StrictParams, load_section, require

logger = logging.getLogger(__name__)

CHAMPION, CHALLENGER = tracking.CHAMPION, "challenger"


class RegisterParams(StrictParams):
    decision_metric: str  # a metric of the training run; higher is better

    def check(self) -> None:
        require(bool(self.decision_metric.strip()), "register.decision_metric", "must not be empty")


def decide_alias(new_score: float, champion_score: float | None) -> str:
    """`champion` if there is none yet or the new score is at least the champion's."""
    return CHAMPION if champion_score is None or new_score >= champion_score else CHALLENGER


def champion_score(client: MlflowClient, name: str, metric: str) -> tuple[str | None, float | None]:
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, None
    return version.version, client.get_run(version.run_id).data.metrics.get(metric)


def register(run_id: str, registered_model: str, model_uri: str, params: RegisterParams) -> dict:
    """Register the run's model and move the right alias; the registration record."""
    client = MlflowClient()
    metric = params.decision_metric
    metrics = client.get_run(run_id).data.metrics
    if metric not in metrics:
        raise KeyError(f"run {run_id} has no metric {metric!r} (register.decision_metric)")
    new_score = metrics[metric]
    previous_version, previous_score = champion_score(client, registered_model, metric)
    version = mlflow.register_model(model_uri, registered_model).version
    alias = decide_alias(new_score, previous_score)
    client.set_registered_model_alias(registered_model, alias, version)
    champion_version = version if alias == CHAMPION else previous_version
    logger.info(
        "registered %s v%s (%s %.3f) as %s; champion was v%s (%s)",
        registered_model, version, metric, new_score, alias, previous_version, previous_score,
    )  # fmt: skip
    return {
        "registered_model": registered_model,
        "version": version,
        "alias": alias,
        metric: new_score,
        "champion_version": champion_version,
        "champion_run_id": client.get_model_version(registered_model, champion_version).run_id,
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

    tracking.setup(tracking_params.experiment)
    run_id = tracking.read_run_id(args.model_dir)
    record = register(
        run_id, tracking_params.registered_model, tracking.logged_model_uri(run_id), params
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
