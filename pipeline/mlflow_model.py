"""The stance model as an MLflow pyfunc: (sentence, actor) rows in, stance and scores out.

Logged by `train` with the `pipeline` package as code, so the registered model scores
data anywhere MLflow runs (a notebook, `mlflow models serve`, a Spark pyfunc UDF)
through the same preprocessing as training and serving.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

from pipeline.inference import Prediction, StancePredictor
from pipeline.labels import STANCES

MODEL_DIR_ARTIFACT = "model_dir"
# The pyfunc's schema, once: input columns and output columns.
INPUT_COLUMNS = ("sentence", "actor")
OUTPUT_COLUMNS = ("stance", *(f"score_{s}" for s in STANCES), "truncated")


def output_frame(predictions: list[Prediction]) -> pd.DataFrame:
    """One output row per prediction, columns ``OUTPUT_COLUMNS``."""
    return pd.DataFrame(
        {
            "stance": [p.stance for p in predictions],
            **{f"score_{s}": [p.scores[s] for p in predictions] for s in STANCES},
            "truncated": [p.truncated for p in predictions],
        },
        columns=list(OUTPUT_COLUMNS),
    )


def example_frames(sentence: str, actor: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(input, output) example of the schema, for the logged model's signature."""
    example = Prediction(
        actor=actor, stance=STANCES[-1], scores=dict.fromkeys(STANCES, 0.25), truncated=False
    )
    return pd.DataFrame({"sentence": [sentence], "actor": [actor]}), output_frame([example])


class StancePyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.predictor = StancePredictor(context.artifacts[MODEL_DIR_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        missing = set(INPUT_COLUMNS) - set(model_input.columns)
        if missing:
            raise ValueError(f"input is missing column(s) {sorted(missing)}")
        rows = list(
            zip(model_input["sentence"].astype(str), model_input["actor"].astype(str), strict=True)
        )
        return output_frame(self.predictor.predict(rows))
