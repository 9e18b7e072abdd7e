"""Document scoring: segment, detect actors, predict; shared by the service, the CLI and Spark.

A document becomes its content sentences (``pipeline.segment``, with offsets into the
text); each sentence is scored for the actors detected in it (``pipeline.actors``), and
only for them: a sentence that does not mention an actor says nothing about its stance.
``candidates`` is that selection alone (Spark runs it before the model UDF);
``assemble`` attaches predictions to it, and ``predict_selections`` runs the predictor
for many documents in one call, so the model sees full batches. Plain dataclasses; no
web framework, no response schemas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pipeline.actors import detect_actors
from pipeline.inference import Prediction
from pipeline.segment import Sentence, segment


class Predictor(Protocol):
    """What document scoring needs of ``pipeline.inference.StancePredictor``."""

    labels: list[str]

    def predict(self, rows: list[tuple[str, str]], batch_size: int = ...) -> list[Prediction]: ...


@dataclass(frozen=True)
class Selection:
    """A document's content sentences and the (sentence index, actor) rows to score."""

    sentences: list[Sentence]
    rows: list[tuple[int, str]]

    def pairs(self) -> list[tuple[str, str]]:
        """The (sentence, actor) model inputs of ``rows``, in order."""
        return [(self.sentences[index].text, actor) for index, actor in self.rows]


@dataclass(frozen=True)
class ScoredSentence:
    """A content sentence (offsets into its document) and one prediction per scored actor."""

    index: int  # position among the document's content sentences
    text: str
    start: int
    end: int
    predictions: list[Prediction]


def candidates(text: str, actors: Sequence[str] | None = None) -> Selection:
    """The content sentences of ``text`` and the rows to score.

    Rows follow sentence order, and within a sentence the canonical actor order. With
    ``actors``, only those actors are kept, still only where they are detected.
    """
    sentences = segment(text)
    wanted = set(actors) if actors is not None else None
    rows = [
        (index, actor)
        for index, sentence in enumerate(sentences)
        for actor in detect_actors(sentence.text)
        if wanted is None or actor in wanted
    ]
    return Selection(sentences, rows)


def assemble(selection: Selection, predictions: Sequence[Prediction]) -> list[ScoredSentence]:
    """The selection's sentences with ``predictions`` (one per row, in row order) attached.

    Sentences with no scored actor are kept, with an empty ``predictions`` list, so
    the offsets cover the whole document.
    """
    if len(predictions) != len(selection.rows):
        raise ValueError(f"{len(predictions)} predictions for {len(selection.rows)} rows")
    per_sentence: list[list[Prediction]] = [[] for _ in selection.sentences]
    for (index, _), prediction in zip(selection.rows, predictions, strict=True):
        per_sentence[index].append(prediction)
    return [
        ScoredSentence(i, s.text, s.start, s.end, p)
        for i, (s, p) in enumerate(zip(selection.sentences, per_sentence, strict=True))
    ]


def predict_selections(
    predictor: Predictor, selections: Sequence[Selection], batch_size: int = 32
) -> list[list[ScoredSentence]]:
    """``assemble`` for each selection, with one predict call for all their rows."""
    pairs = [pair for selection in selections for pair in selection.pairs()]
    predicted = predictor.predict(pairs, batch_size=batch_size)
    if len(predicted) != len(pairs):
        raise ValueError(f"the predictor returned {len(predicted)} predictions for {len(pairs)}")
    scored, used = [], 0
    for selection in selections:
        scored.append(assemble(selection, predicted[used : used + len(selection.rows)]))
        used += len(selection.rows)
    return scored


def score_documents(
    predictor: Predictor,
    texts: Sequence[str],
    actors: Sequence[str] | None = None,
    batch_size: int = 32,
) -> list[list[ScoredSentence]]:
    """``candidates`` then ``predict_selections`` for several texts."""
    return predict_selections(predictor, [candidates(t, actors) for t in texts], batch_size)


def score_document(
    predictor: Predictor, text: str, actors: Sequence[str] | None = None, batch_size: int = 32
) -> list[ScoredSentence]:
    """``score_documents`` for one text."""
    return score_documents(predictor, [text], actors, batch_size)[0]
