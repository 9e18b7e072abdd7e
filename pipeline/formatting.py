"""Model input for one (sentence, actor) row: the same for training, evaluation and serving."""

from __future__ import annotations

from pipeline.actors import Mention, find_mentions
from pipeline.labels import ACTOR_NAMES, ACTORS

MARK_OPEN, MARK_CLOSE = "[", "]"


def mark_actor(sentence: str, actor: str, mentions: list[Mention] | None = None) -> str:
    """The sentence with each mention of ``actor`` wrapped in brackets.

    The marks tell the encoder which words the row is about when a sentence names
    several actors with different stances.
    """
    if actor not in ACTORS:
        raise ValueError(f"unknown actor {actor!r}; expected one of {list(ACTORS)}")
    mentions = find_mentions(sentence) if mentions is None else mentions
    pieces, cursor = [], 0
    for mention in mentions:
        if mention.actor != actor:
            continue
        pieces += [sentence[cursor : mention.start], MARK_OPEN, mention.text, MARK_CLOSE]
        cursor = mention.end
    pieces.append(sentence[cursor:])
    return "".join(pieces)


def model_input(sentence: str, actor: str) -> tuple[str, str]:
    """(first segment, second segment) of the pair classifier: actor name, marked sentence."""
    marked = mark_actor(sentence, actor)  # validates the actor first
    return ACTOR_NAMES[actor], marked


def flat_input(sentence: str, actor: str) -> str:
    """The pair as one string, for models that take a single text (the TF-IDF baseline)."""
    first, second = model_input(sentence, actor)
    return f"{first} | {second}"
