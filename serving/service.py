"""BentoML service: stance of each actor in news sentences and documents.

Serve with ``bentoml serve serving.service:StanceService --host 127.0.0.1 --port 3000``.
The model comes from the local BentoML store by tag ($STANCE_MODEL_TAG, default
``stance-classifier:latest``), put there by the pipeline's handoff stage. All
predictions go through pipeline.inference.StancePredictor, the same code path that
evaluation measures.

Annotations are evaluated at decoration time (no ``from __future__ import
annotations``): BentoML builds the request schemas from them.
"""

import logging
import os

import bentoml

from pipeline.inference import StancePredictor
from pipeline.labels import ACTORS, STANCES
from serving import scoring
from serving.schemas import (
    MAX_ITEMS,
    MAX_SENTENCE_CHARS,
    MAX_TEXT_CHARS,
    ActorFilter,
    ActorStance,
    ClassifyItems,
    Document,
    Limits,
    ModelRef,
    ScoreResponse,
    ServiceMetadata,
)
from serving.store import MODEL_NAME, load_model, resolve_tag

logger = logging.getLogger(__name__)

TAG_ENV = "STANCE_MODEL_TAG"
DEFAULT_TAG = f"{MODEL_NAME}:latest"
# Rows per forward pass. Adaptive batches of /classify are capped at the same size so
# one dispatch is one pass; larger requests are split by BentoML's dispatcher.
BATCH_SIZE = 64
# A request waits at most this long in the batching queue before BentoML answers 503.
MAX_LATENCY_MS = 30_000


def model_tag() -> str:
    return os.environ.get(TAG_ENV, "").strip() or DEFAULT_TAG


@bentoml.service(
    # Loopback only; `--host` on the command line overrides, so `make serve` passes it too.
    http={"host": "127.0.0.1", "port": 3000},
    # One worker and one inference thread: torch already uses every core for a pass,
    # and parallel passes on 2 cores would only contend.
    workers=1,
    threads=1,
    traffic={"timeout": 120},
)
class StanceService:
    @bentoml.on_deployment
    def check_model_in_store() -> None:
        """Fail `bentoml serve` before workers start when the store lacks the model."""
        resolve_tag(model_tag())

    def __init__(self) -> None:
        # Pin `latest` to one version first, so the weights and the metadata we
        # report cannot come from two different saves.
        tag = resolve_tag(model_tag())
        model_dir, metadata = load_model(tag)
        self.predictor = StancePredictor(model_dir)
        if sorted(self.predictor.labels) != sorted(STANCES):
            raise RuntimeError(
                f"model {tag} predicts {self.predictor.labels}, expected the stances {STANCES}"
            )
        name, version = tag.split(":", 1)
        self.model_ref = ModelRef(
            name=str(metadata.get("registry_name") or name),
            version=str(metadata.get("registry_version") or version),
            tag=tag,
            mlflow_run_id=metadata.get("mlflow_run_id"),
        )
        self.service_metadata = ServiceMetadata(
            model=self.model_ref,
            registry_alias=metadata.get("alias"),
            base_model=metadata.get("base_model"),
            training_data_md5=metadata.get("training_data_md5"),
            labels=list(self.predictor.labels),
            actors=list(ACTORS),
            limits=Limits(
                max_tokens=self.predictor.max_length,
                max_text_chars=MAX_TEXT_CHARS,
                max_sentence_chars=MAX_SENTENCE_CHARS,
                max_items=MAX_ITEMS,
            ),
            dominant_stance_rule=scoring.DOMINANT_STANCE_RULE,
        )
        logger.info("loaded %s from %s (max_length %d)", tag, model_dir, self.predictor.max_length)

    @bentoml.api(batchable=True, max_batch_size=BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def classify(self, items: ClassifyItems) -> list[ActorStance]:
        """Stance of each (sentence, actor) item, in request order.

        Concurrent requests are merged into shared forward passes (adaptive batching).
        A sentence longer than the model's max tokens is scored on its truncated
        form and flagged ``truncated: true``.
        """
        rows = [(item.sentence, item.actor) for item in items]
        predictions = self.predictor.predict(rows, batch_size=BATCH_SIZE)
        return [scoring.to_actor_stance(prediction) for prediction in predictions]

    @bentoml.api
    def score(self, text: Document, actors: ActorFilter = None) -> ScoreResponse:
        """Split a document into sentences and score each actor detected in each.

        ``actors`` (optional) restricts scoring to those actors, still only in the
        sentences that mention them. The summary gives, per actor, the number of
        scored sentences, mean scores and the dominant stance (argmax of the means).
        """
        sentences, summary = scoring.score_document(
            self.predictor, text, actors, batch_size=BATCH_SIZE
        )
        return ScoreResponse(sentences=sentences, summary=summary, model=self.model_ref)

    @bentoml.api(route="/metadata")
    def metadata(self) -> ServiceMetadata:
        """The served model's identity and lineage, label space and input limits."""
        return self.service_metadata
