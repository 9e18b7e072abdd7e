"""Request and response bodies of the stance service, with the documented input limits.

BentoML validates request bodies against these pydantic types before any handler
runs; a violation becomes HTTP 400 whose ``detail[].loc`` names the offending field
(e.g. ``["items", 3, "actor"]``). Nothing here imports the model.
"""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from pipeline.labels import ACTORS

# Limits: large enough for any real news article, small enough that one request
# cannot hold the single model worker for minutes.
MAX_TEXT_CHARS = 100_000  # /score: characters in one document
MAX_SENTENCE_CHARS = 10_000  # /classify: characters in one sentence
MAX_ITEMS = 256  # /classify: (sentence, actor) rows in one request

Actor = Literal[ACTORS]  # type: ignore[valid-type]  # unknown actors are a 400


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


Sentence = Annotated[
    str, Field(min_length=1, max_length=MAX_SENTENCE_CHARS), AfterValidator(_not_blank)
]
Document = Annotated[
    str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_not_blank)
]


def _no_duplicates(actors: list[str] | None) -> list[str] | None:
    if actors is not None and len(set(actors)) != len(actors):
        raise ValueError("must not repeat an actor")
    return actors


ActorFilter = Annotated[
    list[Actor] | None,
    Field(min_length=1, max_length=len(ACTORS)),
    AfterValidator(_no_duplicates),
]


class ClassifyItem(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not ignored

    sentence: Sentence
    actor: Actor


ClassifyItems = Annotated[list[ClassifyItem], Field(min_length=1, max_length=MAX_ITEMS)]


class ActorStance(BaseModel):
    actor: str
    stance: str
    scores: dict[str, float] = Field(description="probability per stance; sums to 1")
    truncated: bool = Field(description="the input was cut to the model's max tokens")


class ScoredSentence(BaseModel):
    text: str
    start: int = Field(description="offset of the first character in the document")
    end: int = Field(description="offset one past the last character")
    predictions: list[ActorStance] = Field(description="one per scored actor; may be empty")


class ActorSummary(BaseModel):
    actor: str
    sentence_count: int = Field(description="sentences in which the actor was scored")
    truncated_count: int
    mean_scores: dict[str, float] | None = Field(description="null when sentence_count is 0")
    dominant_stance: str | None = Field(
        description="argmax of mean_scores, ties to the earlier label; null when no sentences"
    )


class ModelRef(BaseModel):
    name: str = Field(description="MLflow registered model name (BentoML name if unknown)")
    version: str = Field(description="MLflow registry version (BentoML version if unknown)")
    tag: str = Field(description="BentoML store tag, name:version")
    mlflow_run_id: str | None
    backend: str = Field(description="what runs the model: onnx (ONNX Runtime) or torch")
    precision: str = Field(description="weights of the served model: int8 or fp32")


class Row(BaseModel):
    """One (sentence, actor) row for the model service: no length limits (the public
    endpoints enforce theirs; a /score sentence may exceed the /classify limit)."""

    sentence: str
    actor: Actor


class ScoreResponse(BaseModel):
    sentences: list[ScoredSentence]
    summary: list[ActorSummary]
    model: ModelRef


class Limits(BaseModel):
    max_tokens: int = Field(description="model input length; longer rows are truncated+flagged")
    max_text_chars: int
    max_sentence_chars: int
    max_items: int


class ServiceMetadata(BaseModel):
    model: ModelRef
    registry_alias: str | None
    base_model: str | None
    training_data_md5: str | None
    labels: list[str]
    actors: list[str]
    limits: Limits
    dominant_stance_rule: str
