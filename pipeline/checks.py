"""Corpus checks run by ``prepare``: seed leakage and template-filled near-duplicates."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                         "\u2013": "-", "\u2014": "-"})  # fmt: skip
_NON_WORD = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lower-cased text with quotes, dashes and punctuation folded and spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    return _SPACES.sub(" ", _NON_WORD.sub(" ", text)).strip()


def char_ngrams(text: str, n: int = 5) -> set[str]:
    norm = normalise(text)
    return {norm[i : i + n] for i in range(max(len(norm) - n + 1, 1))}


def word_ngrams(text: str, n: int = 4) -> set[tuple[str, ...]]:
    words = normalise(text).split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class SimilarPair:
    first: str
    second: str
    score: float

    def __str__(self) -> str:
        return f"{self.score:.2f}  {self.first!r}  ~  {self.second!r}"


def find_leaks(candidates: list[str], protected: list[str], threshold: float) -> list[SimilarPair]:
    """Pairs (candidate, protected) whose character 5-gram Jaccard is >= threshold.

    Equal normalised texts have Jaccard 1.0, so exact copies are caught by the same rule.
    """
    protected_grams = [(text, char_ngrams(text)) for text in dict.fromkeys(protected)]
    index: dict[str, list[int]] = defaultdict(list)
    for i, (_, grams) in enumerate(protected_grams):
        for gram in grams:
            index[gram].append(i)
    leaks = []
    for text in dict.fromkeys(candidates):
        grams = char_ngrams(text)
        shared: dict[int, int] = defaultdict(int)
        for gram in grams:
            for i in index.get(gram, ()):
                shared[i] += 1
        for i, count in shared.items():
            other_text, other_grams = protected_grams[i]
            jaccard = count / (len(grams) + len(other_grams) - count)
            if jaccard >= threshold:
                leaks.append(SimilarPair(text, other_text, jaccard))
    return sorted(leaks, key=lambda p: -p.score)


def find_templates(sentences: list[str], threshold: float, n: int = 4) -> list[SimilarPair]:
    """Pairs where more than ``threshold`` of one sentence's word n-grams occur in the other.

    This is what template filling leaves behind: the same word sequence with a few
    names, numbers or words swapped. Sentences shorter than n words are not compared.
    """
    texts = list(dict.fromkeys(sentences))
    grams = [word_ngrams(text, n) for text in texts]
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, own in enumerate(grams):
        for gram in own:
            index[gram].append(i)
    pairs = []
    for i, own in enumerate(grams):
        if not own:
            continue
        shared: dict[int, int] = defaultdict(int)
        for gram in own:
            for j in index[gram]:
                if j != i:
                    shared[j] += 1
        for j, count in shared.items():
            overlap = count / len(own)
            if overlap > threshold and (i < j or count / max(len(grams[j]), 1) <= threshold):
                pairs.append(SimilarPair(texts[i], texts[j], overlap))
    return sorted(pairs, key=lambda p: -p.score)


def find_phrase_leaks(
    candidates: list[str], protected: list[str], n: int, allowed: list[str] = ()
) -> list[SimilarPair]:
    """Pairs (candidate, protected) sharing a run of ``n`` normalised words.

    Jaccard over the whole sentence misses a copied clause inside a new sentence;
    a shared run of seven words is a copy in all but names and set phrases, which
    ``allowed`` lists (a run inside any allowed phrase does not count).
    The pair's score is the shared run's length in words.
    """
    allowed_norm = [f" {normalise(phrase)} " for phrase in allowed]
    owner: dict[tuple[str, ...], str] = {}
    for text in dict.fromkeys(protected):
        for gram in word_ngrams(text, n):
            owner.setdefault(gram, text)
    leaks = []
    for text in dict.fromkeys(candidates):
        for gram in sorted(word_ngrams(text, n)):
            joined = f" {' '.join(gram)} "
            if gram in owner and not any(joined in phrase for phrase in allowed_norm):
                leaks.append(SimilarPair(f"{text}  [shared: {joined.strip()}]", owner[gram], n))
                break
    return leaks


@dataclass(frozen=True)
class LabelConflict:
    """Two near-duplicate sentences that label the same actor differently."""

    first_id: str
    second_id: str
    actor: str
    first_stance: str
    second_stance: str
    jaccard: float

    @property
    def key(self) -> tuple[str, str]:
        return tuple(sorted((self.first_id, self.second_id)))  # type: ignore[return-value]

    def __str__(self) -> str:
        return (
            f"{self.jaccard:.2f}  {self.actor}: {self.first_id} {self.first_stance} "
            f"vs {self.second_id} {self.second_stance}"
        )


def word_set(text: str) -> frozenset[str]:
    return frozenset(normalise(text).split())


def find_label_conflicts(rows, threshold: float) -> list[LabelConflict]:
    """Near-duplicate sentence pairs (word Jaccard >= threshold) sharing an actor with
    different stances. ``rows`` have ``id``, ``sentence``, ``actor`` and ``stance``.

    Intersections come from one sparse product of the sentence-by-word matrix, so
    the check stays fast on a corpus of thousands of sentences.
    """
    import numpy as np
    from scipy.sparse import csr_matrix

    by_sentence: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    for row in rows:
        by_sentence[row.sentence][row.actor] = (row.id, row.stance)
    sentences = list(by_sentence)
    words = [word_set(s) for s in sentences]
    vocabulary: dict[str, int] = {}
    indices, indptr = [], [0]
    for own in words:
        indices += [vocabulary.setdefault(w, len(vocabulary)) for w in own]
        indptr.append(len(indices))
    matrix = csr_matrix(
        (np.ones(len(indices), dtype=np.int32), indices, indptr),
        shape=(len(sentences), max(len(vocabulary), 1)),
    )
    shared = (matrix @ matrix.T).tocoo()
    sizes = np.array([len(w) for w in words])
    conflicts = []
    for i, j, inter in zip(shared.row, shared.col, shared.data, strict=True):
        if i >= j:
            continue
        jaccard = inter / (sizes[i] + sizes[j] - inter)
        if jaccard < threshold:
            continue
        first, second = by_sentence[sentences[i]], by_sentence[sentences[j]]
        for actor in sorted(set(first) & set(second)):
            if first[actor][1] != second[actor][1]:
                conflicts.append(
                    LabelConflict(
                        first[actor][0], second[actor][0], actor,
                        first[actor][1], second[actor][1], float(jaccard),
                    )
                )  # fmt: skip
    return sorted(conflicts, key=lambda c: (-c.jaccard, c.key))


def read_conflict_allowlist(path) -> dict[tuple[str, str], str]:
    """``id id  reason`` per line (``#`` comments); a line without a reason is an error."""
    from pathlib import Path

    allowed = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(maxsplit=2)
        if len(parts) < 3 or not parts[2].strip():
            raise ValueError(f"{path}:{number}: expected 'first_id second_id reason', got {line!r}")
        allowed[tuple(sorted(parts[:2]))] = parts[2].strip()
    return allowed
