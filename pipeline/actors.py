"""Actor detection: which of the five actors a sentence mentions, with character spans.

The alias dictionary is data (``actors.yaml`` beside this module); its header states
the matching rules. Detection proposes (sentence, actor) rows; the stance model then
reads each row. ``other`` mentions are only candidates: the guideline labels an
``other`` row only where that party takes a position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from pipeline.labels import ACTORS

ALIAS_FILE = "actors.yaml"

# A country alias inside a "former ..." title is the former official speaking for
# themselves ("a former senior White House official"): guideline section "Actors".
# The title is taken as the five words after "former" within one clause, so the
# object of the sentence ("former minister X urged Tokyo ...") keeps its actor.
_FORMER_TITLE = re.compile(r"\bformer\s+(?:[^\s,;:()\u2014\u2013\"“”]+\s+){0,4}$", re.IGNORECASE)


@dataclass(frozen=True)
class Mention:
    actor: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class AliasTable:
    case_sensitive: re.Pattern[str]
    case_insensitive: re.Pattern[str]
    actor_of: dict[str, str]  # alias (lower-cased for the insensitive ones) -> actor
    exclude: re.Pattern[str] | None


def _alternation(aliases: list[str]) -> str:
    # Longest first, so the regex engine prefers "South Korea" to "Korea" at one position.
    ordered = sorted(set(aliases), key=len, reverse=True)
    return "|".join(re.escape(alias) for alias in ordered)


def _bounded(alternation: str) -> str:
    return rf"(?<![\w.])(?:{alternation})(?!\w)"


def build_alias_table(config: dict) -> AliasTable:
    """Compile an alias dictionary ({actor: [aliases], "exclude": [...]}) into matchers."""
    unknown = set(config) - set(ACTORS) - {"exclude"}
    if unknown:
        raise ValueError(f"alias dictionary: unknown actor key(s) {sorted(unknown)}")
    actor_of: dict[str, str] = {}
    folded: dict[str, str] = {}
    sensitive, insensitive = [], []
    for actor in ACTORS:
        for alias in config.get(actor) or []:
            alias = str(alias)
            key = alias if alias != alias.lower() else alias.lower()
            # Compare case-folded: a lowercase alias matches every casing of the text.
            clash = folded.get(alias.lower())
            if clash and clash != actor:
                raise ValueError(f"alias {alias!r} is listed for {clash!r} and {actor!r}")
            folded[alias.lower()] = actor
            actor_of[key] = actor
            (sensitive if alias != alias.lower() else insensitive).append(alias)
    exclude = config.get("exclude") or []
    return AliasTable(
        case_sensitive=re.compile(_bounded(_alternation(sensitive))),
        case_insensitive=re.compile(_bounded(_alternation(insensitive)), re.IGNORECASE),
        actor_of=actor_of,
        exclude=re.compile(_bounded(_alternation(exclude))) if exclude else None,
    )


@lru_cache(maxsize=1)
def default_alias_table() -> AliasTable:
    text = resources.files("pipeline").joinpath(ALIAS_FILE).read_text(encoding="utf-8")
    return build_alias_table(yaml.safe_load(text))


def find_mentions(sentence: str, table: AliasTable | None = None) -> list[Mention]:
    """All actor mentions in ``sentence``, left to right, without overlaps."""
    table = table or default_alias_table()
    excluded = [m.span() for m in table.exclude.finditer(sentence)] if table.exclude else []
    candidates = []
    for pattern, fold in ((table.case_sensitive, False), (table.case_insensitive, True)):
        for match in pattern.finditer(sentence):
            alias = match.group(0).lower() if fold else match.group(0)
            candidates.append((match.start(), match.end(), table.actor_of[alias]))
    # Longest match wins where two aliases overlap; then left to right.
    candidates.sort(key=lambda c: (-(c[1] - c[0]), c[0]))
    taken: list[tuple[int, int]] = excluded[:]
    mentions = []
    for start, end, actor in candidates:
        if any(start < t_end and t_start < end for t_start, t_end in taken):
            continue
        taken.append((start, end))
        if actor != "other" and _FORMER_TITLE.search(sentence[:start]):
            actor = "other"
        mentions.append(Mention(actor, start, end, sentence[start:end]))
    return sorted(mentions, key=lambda m: m.start)


def detect_actors(sentence: str, table: AliasTable | None = None) -> list[str]:
    """The actors mentioned in ``sentence``, in the canonical order of ``ACTORS``."""
    found = {mention.actor for mention in find_mentions(sentence, table)}
    return [actor for actor in ACTORS if actor in found]
