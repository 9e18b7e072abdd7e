"""Request and response bodies of the stance service, with the documented input limits.

These pydantic types are the contract: BentoML validates request bodies against them
before any handler runs, and the published OpenAPI document (serving/contract.py) is
generated from them, so what the document says and what the service does cannot drift
apart. A violation becomes HTTP 400 whose ``detail[].loc`` names the offending field
(e.g. ``["items", 3, "actor"]``). Nothing here imports the model.
"""

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from pipeline.inference import Backend, Precision
from pipeline.labels import ACTORS, STANCES

# Limits: large enough for any real news article, small enough that one request
# cannot hold the single model worker for minutes.
MAX_TEXT_CHARS = 100_000  # /score: characters in one document
MAX_SENTENCE_CHARS = 10_000  # /classify: characters in one sentence
MAX_ITEMS = 256  # /classify: (sentence, actor) rows in one request
# Bytes in one request body, checked before it is parsed (413 above it). A JSON
# encoder may write any character as a \uXXXX escape, and a character outside the
# Basic Multilingual Plane as two (12 bytes): the largest valid /classify body,
# MAX_ITEMS sentences of MAX_SENTENCE_CHARS such characters, is about 30.7 MB, so
# every request the field limits allow fits (tests/serving/test_contract.py).
MAX_BODY_BYTES = 32 * 1024 * 1024

Actor = Literal[ACTORS]  # type: ignore[valid-type]  # unknown actors are a 400
Stance = Literal[STANCES]  # type: ignore[valid-type]


class JsonSchemaExtra:
    """Keywords added to a type's JSON schema, for a rule that a validator enforces
    (pydantic cannot derive them from a function)."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(self, core_schema, handler) -> dict[str, Any]:
        return {**handler(core_schema), **self.keywords}


# Whitespace by every definition a client may use: Python's str.isspace, ECMAScript's
# and Rust's regex \s (they differ on U+001C-U+001F, U+0085 and U+FEFF). A sentence or
# text must contain one character outside it. The JSON-schema pattern and the
# server's check are the same regex, written with \uXXXX escapes only, which
# ECMAScript, Python and Rust regexes read alike.
NOT_BLANK_PATTERN = (
    r"[^\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a"
    r"\u2028\u2029\u202f\u205f\u3000\ufeff]"
)
_NOT_BLANK = re.compile(NOT_BLANK_PATTERN)


def _not_blank(value: str) -> str:
    if not _NOT_BLANK.search(value):
        raise ValueError("must not be empty or only whitespace")
    return value


def _no_duplicates(actors: list[str]) -> list[str]:
    if len(set(actors)) != len(actors):
        raise ValueError("must not repeat an actor")
    return actors


Sentence = Annotated[
    str,
    Field(min_length=1, max_length=MAX_SENTENCE_CHARS),
    AfterValidator(_not_blank),
    JsonSchemaExtra(pattern=NOT_BLANK_PATTERN),
]
Document = Annotated[
    str,
    Field(min_length=1, max_length=MAX_TEXT_CHARS),
    AfterValidator(_not_blank),
    JsonSchemaExtra(pattern=NOT_BLANK_PATTERN),
]
ActorFilter = (
    Annotated[
        list[Actor],
        Field(min_length=1, max_length=len(ACTORS)),
        AfterValidator(_no_duplicates),
        JsonSchemaExtra(uniqueItems=True),
    ]
    | None
)


class ClassifyItem(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not ignored

    sentence: Sentence
    actor: Actor


ClassifyItems = Annotated[list[ClassifyItem], Field(min_length=1, max_length=MAX_ITEMS)]


# The request bodies. The title is what a 400 names ("1 validation error for ...");
# an unknown top-level key is an error too (a misspelt `actor` for `actors` would
# otherwise score every actor without a word).
class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", title="ClassifyRequest")

    items: ClassifyItems = Field(description="the (sentence, actor) rows, scored in this order")


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", title="ScoreRequest")

    text: Document = Field(description="the document; line breaks always end a sentence")
    actors: ActorFilter = Field(
        default=None,
        description="score only these actors (distinct); omitted or null: every actor",
    )


class MetadataRequest(BaseModel):
    """No fields: an empty object, or no body at all."""

    model_config = ConfigDict(extra="forbid", title="MetadataRequest")


Probability = Annotated[float, Field(ge=0, le=1)]
# One probability per stance, named by the stance (the service refuses to start with
# a model whose labels are not exactly STANCES).
StanceScores = create_model(
    "StanceScores",
    __config__=ConfigDict(extra="forbid"),
    __doc__="probability per stance; they sum to 1",
    **{stance: (Probability, ...) for stance in STANCES},
)


class ActorStance(BaseModel):
    actor: Actor
    stance: Stance = Field(description="the stance with the highest score")
    scores: StanceScores  # type: ignore[valid-type]
    truncated: bool = Field(description="the input was cut to the model's max tokens")


ClassifyResponse = Annotated[list[ActorStance], Field(min_length=1, max_length=MAX_ITEMS)]


class ScoredSentence(BaseModel):
    text: str
    start: int = Field(ge=0, description="offset of the first character in the document")
    end: int = Field(ge=0, description="offset one past the last character")
    predictions: list[ActorStance] = Field(description="one per scored actor; may be empty")


class ActorSummary(BaseModel):
    actor: Actor
    sentence_count: int = Field(ge=0, description="sentences in which the actor was scored")
    truncated_count: int = Field(ge=0)
    mean_scores: StanceScores | None = Field(  # type: ignore[valid-type]
        description="null when sentence_count is 0"
    )
    dominant_stance: Stance | None = Field(
        description="argmax of mean_scores, ties to the earlier label; null when no sentences"
    )


class ModelRef(BaseModel):
    name: str = Field(description="MLflow registered model name (BentoML name if unknown)")
    version: str = Field(description="MLflow registry version (BentoML version if unknown)")
    tag: str = Field(description="BentoML store tag, name:version")
    mlflow_run_id: str | None
    backend: Backend = Field(description="what runs the model: onnx (ONNX Runtime) or torch")
    precision: Precision = Field(description="weights of the served model: int8 or fp32")


class ScoreResponse(BaseModel):
    sentences: list[ScoredSentence]
    summary: list[ActorSummary]
    model: ModelRef


class Limits(BaseModel):
    max_tokens: int = Field(description="model input length; longer rows are truncated+flagged")
    max_text_chars: int
    max_sentence_chars: int
    max_items: int
    max_body_bytes: int = Field(description="request body size; larger bodies get 413")


class ServiceMetadata(BaseModel):
    model: ModelRef
    registry_alias: str | None
    base_model: str | None
    training_data_md5: str | None
    labels: list[Stance]
    actors: list[Actor]
    limits: Limits
    dominant_stance_rule: str


# Error bodies. A 400 is BentoML's rendering of the pydantic ValidationError; the
# other statuses carry `error` alone (BentoML's 500/503/504) or `error` and `detail`
# (the contract middleware's 413 and 415).
class ErrorDetail(BaseModel):
    type: str = Field(description="e.g. missing, literal_error, json_invalid, too_long")
    loc: list[str | int] = Field(
        description="path to the offending field (empty when the body is not JSON)"
    )
    msg: str
    url: str | None = Field(default=None, description="pydantic's page on the error type")


class ValidationErrorResponse(BaseModel):
    error: str = Field(description="e.g. '1 validation error for ClassifyRequest'")
    detail: list[ErrorDetail] = Field(min_length=1)


class ErrorResponse(BaseModel):
    error: str
    detail: list[ErrorDetail] | None = None
