"""DVC stage `register`: registry version, champion/challenger alias, BentoML hand-off.

The new version becomes `champion` only if its seed macro-F1 is at least the current
champion's; otherwise it is the `challenger`. The champion is then put into the
BentoML model store, with the MLflow run id, registry version and training data hash
in its metadata, where the service loads it by tag.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipeline.config import StrictParams, load_section, require
from pipeline.inference import INFERENCE_CONFIG, InferenceConfig
from serving.store import save_model
from training import tracking

logger = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
DECISION_METRIC = "seed_macro_f1"


class RegisterParams(StrictParams):
    bento_model_name: str

    def check(self) -> None:
        require(
            bool(self.bento_model_name.strip()), "register.bento_model_name", "must not be empty"
        )


def decide_alias(new_score: float, champion_score: float | None) -> str:
    """`champion` if there is none yet or the new score is at least the champion's."""
    return CHAMPION if champion_score is None or new_score >= champion_score else CHALLENGER


def champion_score(client: MlflowClient, name: str) -> tuple[str | None, float | None]:
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, None
    metric = client.get_run(version.run_id).data.metrics.get(DECISION_METRIC)
    return version.version, metric


def register(run_id: str, registered_model: str, model_uri: str) -> dict:
    """Register the run's model and move the right alias; the registration record."""
    client = MlflowClient()
    new_score = client.get_run(run_id).data.metrics[DECISION_METRIC]
    previous_version, previous_score = champion_score(client, registered_model)
    version = mlflow.register_model(model_uri, registered_model).version
    alias = decide_alias(new_score, previous_score)
    client.set_registered_model_alias(registered_model, alias, version)
    champion_version = version if alias == CHAMPION else previous_version
    logger.info(
        "registered %s v%s (seed macro-F1 %.3f) as %s; champion was v%s (%s)",
        registered_model, version, new_score, alias, previous_version, previous_score,
    )  # fmt: skip
    return {
        "registered_model": registered_model,
        "version": version,
        "alias": alias,
        "seed_macro_f1": new_score,
        "champion_version": champion_version,
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
    record = register(run_id, tracking_params.registered_model, f"runs:/{run_id}/model")
    client = MlflowClient()
    champion = client.get_model_version(record["registered_model"], record["champion_version"])
    if champion.run_id == run_id:
        model_dir = args.model_dir
    else:  # the new model lost: the store keeps (or regains) the champion's own weights
        logged = Path(mlflow.artifacts.download_artifacts(f"runs:/{champion.run_id}/model"))
        # The pyfunc keeps the HF directory under artifacts/<its original folder name>.
        (model_dir,) = {p.parent for p in logged.glob(f"artifacts/*/{INFERENCE_CONFIG}")}
    max_length = InferenceConfig.load(model_dir).max_length
    champion_params = client.get_run(champion.run_id).data.params
    record["bento_tag"] = save_model(
        model_dir,
        params.bento_model_name,
        {
            "mlflow_run_id": champion.run_id,
            "registry_name": record["registered_model"],
            "registry_version": str(champion.version),
            "alias": CHAMPION,
            "training_data_md5": champion_params.get("train_data_md5", "unknown"),
            "base_model": champion_params.get("train.base_model", "unknown"),
            "max_length": max_length,
        },
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    logger.info("BentoML store: %s", record["bento_tag"])


if __name__ == "__main__":
    main()
