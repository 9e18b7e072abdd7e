"""/score's response from the shared document scoring (pipeline.documents): the adapter.

The scoring itself (segment, detect actors, predict) is ``pipeline.documents``, the
same path as the batch CLI and Spark; this module turns its result into the response
schemas and adds the per-actor summary. Kept free of BentoML so it can be tested with
any object that has the StancePredictor interface (``predict(rows, batch_size)`` and
``labels``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline import documents
from pipeline.documents import Predictor
from pipeline.inference import Prediction
from pipeline.labels import ACTORS
from serving.schemas import ActorStance, ActorSummary, ScoredSentence

DOMINANT_STANCE_RULE = (
    "per actor, the stance with the highest mean probability over the sentences in "
    "which that actor was scored; a tie goes to the stance listed first in `labels`"
)


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
    """Every content sentence of ``text`` with its offsets and per-actor predictions,
    and the per-actor summary (``pipeline.documents.score_document``, as response bodies)."""
    scored = documents.score_document(predictor, text, actors, batch_size)
    sentences = [
        ScoredSentence(
            text=s.text,
            start=s.start,
            end=s.end,
            predictions=[to_actor_stance(p) for p in s.predictions],
        )
        for s in scored
    ]
    predictions = [p for s in scored for p in s.predictions]
    return sentences, summarise(predictions, predictor.labels, actors)
