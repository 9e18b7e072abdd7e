"""Document scoring for /score: segment, detect actors, predict, summarise per actor.

Kept free of BentoML so it can be tested with any object that has the
StancePredictor interface (``predict(rows, batch_size)`` and ``labels``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pipeline.actors import detect_actors
from pipeline.inference import Prediction
from pipeline.labels import ACTORS
from pipeline.segment import segment
from serving.schemas import ActorStance, ActorSummary, ScoredSentence

DOMINANT_STANCE_RULE = (
    "per actor, the stance with the highest mean probability over the sentences in "
    "which that actor was scored; a tie goes to the stance listed first in `labels`"
)


class Predictor(Protocol):
    labels: list[str]

    def predict(self, rows: list[tuple[str, str]], batch_size: int = ...) -> list[Prediction]: ...


def to_actor_stance(prediction: Prediction) -> ActorStance:
    return ActorStance(
        actor=prediction.actor,
        stance=prediction.stance,
        scores=prediction.scores,
        truncated=prediction.truncated,
    )


def dominant_stance(mean_scores: dict[str, float], labels: Sequence[str]) -> str:
    """argmax of ``mean_scores``; max() keeps the first of equal keys, i.e. label order."""
    return max(labels, key=lambda label: mean_scores[label])


def summarise(
    predictions: Sequence[Prediction], labels: Sequence[str], actors: Sequence[str] | None
) -> list[ActorSummary]:
    """One summary per actor, in ``ACTORS`` order.

    Actors that were asked for (``actors``) appear even when never detected, with
    ``sentence_count`` 0 and null scores, so a client can tell "absent" from "not asked".
    """
    by_actor: dict[str, list[Prediction]] = {}
    for prediction in predictions:
        by_actor.setdefault(prediction.actor, []).append(prediction)
    wanted = set(actors) if actors is not None else set(by_actor)
    summaries = []
    for actor in (a for a in ACTORS if a in wanted):
        rows = by_actor.get(actor, [])
        if not rows:
            summaries.append(
                ActorSummary(
                    actor=actor,
                    sentence_count=0,
                    truncated_count=0,
                    mean_scores=None,
                    dominant_stance=None,
                )
            )
            continue
        mean = {label: sum(p.scores[label] for p in rows) / len(rows) for label in labels}
        summaries.append(
            ActorSummary(
                actor=actor,
                sentence_count=len(rows),
                truncated_count=sum(p.truncated for p in rows),
                mean_scores=mean,
                dominant_stance=dominant_stance(mean, labels),
            )
        )
    return summaries


def score_document(
    predictor: Predictor, text: str, actors: Sequence[str] | None, batch_size: int
) -> tuple[list[ScoredSentence], list[ActorSummary]]:
    """Every content sentence of ``text`` with its offsets and per-actor predictions.

    Each sentence is scored for the actors detected in it; when ``actors`` is given,
    only for those of them that are detected (a sentence that does not mention an
    actor says nothing about its stance). Sentences with no scored actor are kept,
    with an empty ``predictions`` list, so offsets cover the whole document.
    """
    sentences = segment(text)
    wanted = set(actors) if actors is not None else None
    rows: list[tuple[int, str]] = [
        (index, actor)
        for index, sentence in enumerate(sentences)
        for actor in detect_actors(sentence.text)
        if wanted is None or actor in wanted
    ]
    # One predict call for the whole document, so the model sees full batches.
    predictions = predictor.predict(
        [(sentences[index].text, actor) for index, actor in rows], batch_size=batch_size
    )
    per_sentence: list[list[ActorStance]] = [[] for _ in sentences]
    for (index, _), prediction in zip(rows, predictions, strict=True):
        per_sentence[index].append(to_actor_stance(prediction))
    scored = [
        ScoredSentence(text=s.text, start=s.start, end=s.end, predictions=p)
        for s, p in zip(sentences, per_sentence, strict=True)
    ]
    return scored, summarise(predictions, predictor.labels, actors)
