"""BentoML service: stance of each actor in news sentences and documents.

Serve with ``bentoml serve serving.service:StanceService --host 127.0.0.1 --port 3000``.
The model comes from the local BentoML store by tag ($STANCE_MODEL_TAG, default
``stance-classifier:latest``), put there by the pipeline's handoff stage. All
predictions go through pipeline.inference.StancePredictor, the same code path that
evaluation measures, on the backend and precision the stored model's inference.json
names (the pipeline stores the ONNX Runtime int8 model).

Two services, because BentoML 1.4 batches only calls that arrive at a batchable
endpoint over HTTP: its dispatcher sits in the server's endpoint handler
(``_bentoml_impl/server/app.py``, ``api_endpoint`` -> ``batch_infer``), and a method
called from another endpoint of the same service runs directly, unbatched.
``StanceModel`` holds the model behind one batchable endpoint; ``StanceService``, the
public one, reaches it through ``bentoml.depends``. Under ``bentoml serve`` the
dependency runs in its own process and is called over a local socket, so rows from
``/classify`` and ``/score`` requests share one adaptive-batching queue. Created in
process (tests, notebooks), ``bentoml.depends`` gives a plain ``StanceModel`` whose
method is called directly.

Annotations are evaluated at decoration time (no ``from __future__ import
annotations``): BentoML builds the request schemas from them.
"""

import ctypes
import logging
import os
import signal
import sys
import threading
from typing import get_args

import bentoml
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.context import server_context

from pipeline.inference import Backend, Precision, Prediction, StancePredictor
from pipeline.labels import ACTORS, STANCES
from serving import scoring
from serving.contract import ContractMiddleware, openapi_document
from serving.schemas import (
    MAX_BODY_BYTES,
    MAX_ITEMS,
    MAX_SENTENCE_CHARS,
    MAX_TEXT_CHARS,
    ActorFilter,
    ActorStance,
    ClassifyItems,
    ClassifyRequest,
    ClassifyResponse,
    Document,
    Limits,
    MetadataRequest,
    ModelRef,
    Row,
    ScoreRequest,
    ScoreResponse,
    ServiceMetadata,
)
from serving.store import MODEL_NAME, load_model, resolve_tag

logger = logging.getLogger(__name__)

TAG_ENV = "STANCE_MODEL_TAG"
# BentoML calls a dependency with pickled requests, and only a public ("main") server
# refuses that content type. The model service is safe because it listens on a Unix
# socket in a private (0700) temporary directory; this variable would move it to a
# TCP port on 127.0.0.1, where any local user could send it a pickle.
NO_UDS_ENV = "BENTOML_NO_UDS"
DEFAULT_TAG = f"{MODEL_NAME}:latest"
BACKEND_HEADER, PRECISION_HEADER = "X-Stance-Backend", "X-Stance-Precision"

# Adaptive batching of the model endpoint. Provisional values, to be re-chosen from a
# `make bench` run on a quiet machine (none could be had while this was written):
# measured model-only on the development model, 640 validation rows, length-sorted
# passes of 32, with other jobs loading both cores (load average about 4): static
# int8 338 rows/s, dynamic int8 484, ONNX fp32 199. So a full dispatch of
# MAX_BATCH_SIZE = 128 rows (four passes of PREDICT_BATCH_SIZE, sorted by length
# within the dispatch, which pads less than arrival order) takes about 0.4 s.
MAX_BATCH_SIZE = 128
PREDICT_BATCH_SIZE = 32
# The dispatcher's deadline: a request whose estimated wait exceeds it is answered
# 503 (it is not a batching window; BentoML adapts the window to the traffic). A
# 100,000-character /score document is up to about 1,000 rows, 3 s at the rate above;
# 10 s leaves room for it behind other traffic.
MAX_LATENCY_MS = 10_000
# Concurrent requests the public service keeps in flight toward the model service
# (each waits on the batching queue, not on a core).
PUBLIC_THREADS = 32


def model_tag() -> str:
    return os.environ.get(TAG_ENV, "").strip() or DEFAULT_TAG


def model_served_apart() -> bool:
    """True under `bentoml serve`, where StanceModel runs in a process of its own."""
    return StanceModel.name in BentoMLContainer.remote_runner_mapping.get()


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


def to_prediction(stance: ActorStance) -> Prediction:
    return Prediction(
        actor=stance.actor,
        stance=stance.stance,
        scores=stance.scores.model_dump(),
        truncated=stance.truncated,
    )


@bentoml.service(
    # One worker and one inference thread: ONNX Runtime (or torch) already uses every
    # core for a pass; the dispatcher runs one batch at a time.
    workers=1,
    threads=1,
    traffic={"timeout": 120},
    # BentoML >= 1.4.31 closes the client session to a dependency every 100 requests
    # or 300 s, while other requests are still in flight on it: under concurrent load
    # they fail with "Server disconnected" (bentoml/BentoML#5540, after PR #5522).
    # Measured here: 108 of 4096 rows failed at 4 clients x 32. Never refresh it.
    runner_connection={"max_requests": 2**31 - 1, "max_age": 1e9},
)
class StanceModel:
    """The model behind BentoML's adaptive batching; called by StanceService only."""

    @bentoml.on_deployment
    def check_model_in_store() -> None:
        """Fail `bentoml serve` before workers start when the store lacks the model."""
        resolve_tag(model_tag())

    @bentoml.on_deployment
    def check_model_socket_is_private() -> None:
        """Fail `bentoml serve` when the model service would take pickles over TCP."""
        if NO_UDS_ENV in os.environ:
            raise RuntimeError(
                f"{NO_UDS_ENV} is set: the model service would accept pickled requests on "
                "a TCP port; unset it (the service needs Unix sockets)"
            )

    def __init__(self) -> None:
        die_with_the_server()
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

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, rows: list[Row]) -> list[ActorStance]:
        """Stance of each row, in order; BentoML merges concurrent calls into one list."""
        predictions = self.predictor.predict(
            [(row.sentence, row.actor) for row in rows], batch_size=PREDICT_BATCH_SIZE
        )
        return [scoring.to_actor_stance(prediction) for prediction in predictions]

    @bentoml.api
    def describe(self) -> ServiceMetadata:
        return self.service_metadata


@bentoml.service(
    # Loopback only; `--host` on the command line overrides, so `make serve` passes it too.
    http={"host": "127.0.0.1", "port": 3000},
    workers=1,
    threads=PUBLIC_THREADS,
    traffic={"timeout": 120},
)
class StanceService:
    model = bentoml.depends(StanceModel)

    @bentoml.on_deployment
    def check_model_in_store() -> None:
        """Fail `bentoml serve` before workers start when the store lacks the model."""
        resolve_tag(model_tag())

    def __init__(self) -> None:
        die_with_the_server()
        # Under `bentoml serve`, `self.model` is the client of the StanceModel process
        # (resolved once per class; the server opens it). In process, bentoml.depends
        # would also build the model once per class; a StanceModel made here reads the
        # store as it is now, for each StanceService.
        self.model_service = self.model if model_served_apart() else StanceModel()
        self._metadata: ServiceMetadata | None = None
        self._metadata_lock = threading.Lock()
        if isinstance(self.model_service, StanceModel.inner):  # in process: loaded now
            self._metadata = self.model_service.describe()

    @property
    def service_metadata(self) -> ServiceMetadata:
        """The model service's description, asked once (it may start after this one)."""
        with self._metadata_lock:
            if self._metadata is None:
                self._metadata = self.model_service.describe()
            return self._metadata

    @property
    def model_ref(self) -> ModelRef:
        return self.service_metadata.model

    @property
    def labels(self) -> list[str]:  # with predict(): the scoring.Predictor interface
        return self.service_metadata.labels

    def predict(self, rows: list[tuple[str, str]], batch_size: int = 0) -> list[Prediction]:
        """Rows through the model service's batching queue (batch_size is the queue's)."""
        if not rows:
            return []
        stances = self.model_service.predict([Row(sentence=s, actor=a) for s, a in rows])
        return [to_prediction(stance) for stance in stances]

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
        forward passes (adaptive batching). A sentence longer than the model's max
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
