"""BentoML service: stance of each actor in news sentences and documents.

Serve with ``bentoml serve serving.service:StanceService --host 127.0.0.1 --port 3000``.
The model comes from the local BentoML store by tag ($STANCE_MODEL_TAG, default
``stance-classifier:latest``), put there by the pipeline's handoff stage. All
predictions go through pipeline.inference.StancePredictor, the same code path that
evaluation measures, on the backend and precision the stored model's inference.json
names (the pipeline stores the ONNX Runtime int8 model).

One process holds the model. Rows of concurrent ``/classify`` and ``/score`` requests
share forward passes through serving.batcher.MicroBatcher: one inference thread takes
whatever is queued whenever it is free, so a lone request is served at once and busy
periods form large batches. (Until this round a second BentoML service held the model
behind BentoML's adaptive batching, reached over a local socket; measured on this
machine that cost a lone sentence 141 ms at p50 and kept 4 clients x 32 sentences at
152 sentences/s. Figures of both designs: README, `make bench`.)

Annotations are evaluated at decoration time (no ``from __future__ import
annotations``): BentoML builds the request schemas from them.
"""

import ctypes
import logging
import os
import signal
import sys
from typing import get_args

import bentoml
from bentoml._internal.context import server_context
from bentoml.exceptions import ServiceUnavailable

from pipeline.inference import Backend, Precision, Prediction, StancePredictor
from pipeline.labels import ACTORS, STANCES
from serving import scoring
from serving.batcher import MicroBatcher, Overloaded
from serving.contract import ContractMiddleware, openapi_document
from serving.schemas import (
    MAX_BODY_BYTES,
    MAX_ITEMS,
    MAX_SENTENCE_CHARS,
    MAX_TEXT_CHARS,
    ActorFilter,
    ClassifyItems,
    ClassifyRequest,
    ClassifyResponse,
    Document,
    Limits,
    MetadataRequest,
    ModelRef,
    ScoreRequest,
    ScoreResponse,
    ServiceMetadata,
)
from serving.store import MODEL_NAME, load_model, resolve_tag

logger = logging.getLogger(__name__)

TAG_ENV = "STANCE_MODEL_TAG"
DEFAULT_TAG = f"{MODEL_NAME}:latest"
BACKEND_HEADER, PRECISION_HEADER = "X-Stance-Backend", "X-Stance-Precision"

# Micro-batching (serving.batcher). MAX_BATCH_ROWS: the most rows one model call takes
# from the queue (whole requests; a larger request runs alone); the predictor sorts them
# by length and runs passes of PREDICT_BATCH_SIZE. MAX_QUEUED_ROWS: rows allowed to wait;
# a request beyond it is answered 503 at once rather than queued without bound.
# Measured by `make bench` on this machine (2 cores, ONNX int8 dynamic, invented
# 36-token pairs; README, Benchmarks): the predictor alone runs 407-530 rows/s on
# length-sorted passes of 32 (1k-10k rows), so a 128-row call takes about 0.3 s; the
# service gives 265-271 sentences/s at 4 clients x 32 (4 such requests are exactly one
# call; median 3.8x the naive loop over three rounds) and a p99 of 36-46 ms (median 45)
# for single sentences at 4 clients. A larger cap
# would only lengthen the wait of a request queued behind a full call. A full queue of
# 4,096 rows drains in about 8-10 s, well inside the 120 s request timeout, with room
# for a 100,000-character /score document (about 1,000 rows) behind it.
MAX_BATCH_ROWS = 128
PREDICT_BATCH_SIZE = 32
MAX_QUEUED_ROWS = 4_096
# Request threads: each parses, waits on the queue (not on a core) and serialises.
PUBLIC_THREADS = 32


def model_tag() -> str:
    return os.environ.get(TAG_ENV, "").strip() or DEFAULT_TAG


def die_with_the_server() -> None:
    """Under `bentoml serve`, end this worker process when the server process ends.

    The server (a circus arbiter) stops its workers when it is stopped; killed with
    SIGKILL it cannot, and its workers lived on as orphans, still holding the port
    and answering with the old model beside any restarted server. Linux's
    PR_SET_PDEATHSIG has the kernel kill the worker with its parent. Workers only
    (BentoML sets a worker index there); nothing in process.
    """
    if server_context.worker_index is None or not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1  # <linux/prctl.h>
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL) != 0:
        logger.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())


class LoadedModel:
    """The stored model's predictor and the description the service publishes."""

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
        model_ref = ModelRef(
            name=str(metadata.get("registry_name") or name),
            version=str(metadata.get("registry_version") or version),
            tag=tag,
            mlflow_run_id=metadata.get("mlflow_run_id"),
            backend=self.predictor.backend_name,
            precision=self.predictor.precision,
        )
        self.service_metadata = ServiceMetadata(
            model=model_ref,
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
                max_body_bytes=MAX_BODY_BYTES,
            ),
            dominant_stance_rule=scoring.DOMINANT_STANCE_RULE,
        )
        logger.info(
            "loaded %s from %s (%s %s, max_length %d)",
            tag, model_dir, model_ref.backend, model_ref.precision, self.predictor.max_length,
        )  # fmt: skip

    def predict(self, rows: list[tuple[str, str]]) -> list[Prediction]:
        """Stance of each (sentence, actor) row, in order (one micro-batch)."""
        return self.predictor.predict(rows, batch_size=PREDICT_BATCH_SIZE)


@bentoml.service(
    # Loopback only; `--host` on the command line overrides, so `make serve` passes it too.
    http={"host": "127.0.0.1", "port": 3000},
    workers=1,
    threads=PUBLIC_THREADS,
    traffic={"timeout": 120},
)
class StanceService:
    @bentoml.on_deployment
    def check_model_in_store() -> None:
        """Fail `bentoml serve` before workers start when the store lacks the model."""
        resolve_tag(model_tag())

    def __init__(self) -> None:
        die_with_the_server()
        self.model = LoadedModel()
        self.service_metadata = self.model.service_metadata
        self.batcher = MicroBatcher(
            self.model.predict, MAX_BATCH_ROWS, MAX_QUEUED_ROWS, name="stance-model"
        ).start()

    @bentoml.on_shutdown
    def stop_batcher(self) -> None:
        self.batcher.stop(timeout=30)

    @property
    def model_ref(self) -> ModelRef:
        return self.service_metadata.model

    @property
    def labels(self) -> list[str]:  # with predict(): the scoring.Predictor interface
        return self.service_metadata.labels

    def predict(self, rows: list[tuple[str, str]], batch_size: int = 0) -> list[Prediction]:
        """Rows through the shared micro-batching queue (batch_size is the queue's)."""
        try:
            return self.batcher.submit(rows)
        except Overloaded as error:
            raise ServiceUnavailable(str(error)) from error

    def _report_backend(self, ctx: bentoml.Context | None) -> None:
        if ctx is not None:
            ctx.response.headers[BACKEND_HEADER] = self.model_ref.backend
            ctx.response.headers[PRECISION_HEADER] = self.model_ref.precision

    # Each endpoint's input is a request model (unknown keys refused); BentoML passes
    # its fields as the keyword arguments.
    @bentoml.api(input_spec=ClassifyRequest)
    def classify(self, items: ClassifyItems, ctx: bentoml.Context = None) -> ClassifyResponse:
        """Stance of each (sentence, actor) item, in request order.

        Rows of concurrent requests (and of /score documents) are merged into shared
        forward passes (micro-batching). A sentence longer than the model's max
        tokens is scored on its truncated form and flagged ``truncated: true``. The
        response headers X-Stance-Backend and X-Stance-Precision say what served it.
        """
        self._report_backend(ctx)
        predictions = self.predict([(item.sentence, item.actor) for item in items])
        return [scoring.to_actor_stance(prediction) for prediction in predictions]

    @bentoml.api(input_spec=ScoreRequest)
    def score(
        self, text: Document, actors: ActorFilter = None, ctx: bentoml.Context = None
    ) -> ScoreResponse:
        """Split a document into sentences and score each actor detected in each.

        ``actors`` (optional; null is the same as omitted) restricts scoring to those
        actors, still only in the sentences that mention them. The summary gives, per
        actor, the number of scored sentences, mean scores and the dominant stance
        (argmax of the means).
        """
        self._report_backend(ctx)
        sentences, summary = scoring.score_document(self, text, actors, batch_size=0)
        return ScoreResponse(sentences=sentences, summary=summary, model=self.model_ref)

    @bentoml.api(route="/metadata", input_spec=MetadataRequest)
    def metadata(self, ctx: bentoml.Context = None) -> ServiceMetadata:
        """The served model's identity, lineage, backend and precision, labels and limits."""
        self._report_backend(ctx)
        return self.service_metadata


SUCCESS_HEADERS = {
    BACKEND_HEADER: {
        "description": "what ran the model",
        "schema": {"type": "string", "enum": list(get_args(Backend))},
    },
    PRECISION_HEADER: {
        "description": "the served model's weights",
        "schema": {"type": "string", "enum": list(get_args(Precision))},
    },
}


def service_openapi_document() -> dict:
    """The public service's OpenAPI document (served at /docs.json)."""
    return openapi_document(StanceService, SUCCESS_HEADERS, MAX_BODY_BYTES)


# Byte limit and Content-Type before BentoML reads a body; the contract's document.
StanceService.add_asgi_middleware(
    ContractMiddleware,
    document=service_openapi_document,
    endpoints=[api.route for api in StanceService.apis.values()],
    max_body_bytes=MAX_BODY_BYTES,
)
