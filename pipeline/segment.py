"""Sentence segmentation of real news text, with character offsets into the input.

pysbd does the sentence splitting inside a line; the rules here handle what it does
not know about news pages: a line break always ends a sentence (headings and list
items have no final period), non-content lines (bylines, URLs, copyright lines,
comment widgets) are dropped, a leading dateline is cut, numbered list markers stay
attached to their item, and a sentence repeated word for word is kept once.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import pysbd


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int  # offset of the first character in the document
    end: int  # offset one past the last character


# Lines that are page furniture, not reporting (rule 5 of the guideline).
_URL_ONLY = re.compile(r"^\s*(https?://|www\.)\S+\s*$", re.IGNORECASE)
_BYLINE_DATE = re.compile(
    r"^\s*(date|published|updated|posted)\b[\s:]*\d{4}-\d{2}-\d{2}\b", re.IGNORECASE
)
_COPYRIGHT = re.compile(r"(^\s*(©|\(c\)|copyright)\s)|all rights reserved", re.IGNORECASE)
_COMMENT_WIDGET = re.compile(  # "One thought on “<headline>”": needs the quoted title
    r"^\s*(\d+|one|two|three|four|five)\s+(thoughts?|comments?|responses?|replies)\s+(on|to)\s+[\"“'‘]",
    re.IGNORECASE,
)
# "CaliToday (14/11/2025): Japan has ..." -> the dateline is not part of the sentence.
_DATELINE = re.compile(r"^[A-Z][\w.&' -]{0,40}\s*\(\d{1,2}/\d{1,2}/\d{2,4}\)\s*[:\u2014\u2013-]\s*")
# "1. Official reaffirmation: ..." -- pysbd would split the list number off.
_LIST_MARKER = re.compile(r"^\s*\d{1,2}[.)]\s+")
# pysbd reads any "X." as an initial ("the platform X. He offered ..."). An initial is
# followed by a name, never by a pronoun or article, so a break is restored there.
_MISSED_BREAK = re.compile(
    r"(?<=\b[A-Z]\.)\s+(?=(He|She|It|They|We|I|The|This|That|These|Those|But|And|In|On)\b)"
)


# pysbd's time grows faster than the length of a line (a 100,000-character line took
# about 12x as long as the same text in ordinary lines), so a line longer than
# LONG_LINE is cut into pieces of about that size first, only where a sentence
# certainly ends: a lower-case word of three or more letters, a final . ! or ? (and a
# closing quote), space, then a capital or an opening quote. Initials, "Mr.", "U.S.",
# "Jan.", figures and brackets never match (pysbd does not end a sentence at "x.)"),
# so each piece ends where pysbd would also end a sentence; a line with no such place
# is split whole, as before.
LONG_LINE = 2_000
_CERTAIN_END = re.compile(r"\b[a-z]{3,}[.!?][\"”’']?(?=\s+[\"“‘]?[A-Z])")


def _pieces(line: str) -> list[tuple[int, int]]:
    """(start, end) of consecutive pieces covering ``line``: the whole line when it is at
    most LONG_LINE characters, else cut at certain sentence ends every LONG_LINE or so."""
    if len(line) <= LONG_LINE:
        return [(0, len(line))]
    pieces, start = [], 0
    for match in _CERTAIN_END.finditer(line):
        if match.end() - start >= LONG_LINE:
            pieces.append((start, match.end()))
            start = match.end()
    pieces.append((start, len(line)))
    return pieces


def is_boilerplate(line: str) -> bool:
    """True for lines that carry no reporting: URLs, dated bylines, copyright, comments."""
    stripped = line.strip()
    return bool(
        not stripped
        or _URL_ONLY.match(stripped)
        or _BYLINE_DATE.match(stripped)
        or _COPYRIGHT.search(stripped)
        or _COMMENT_WIDGET.match(stripped)
    )


_local = threading.local()


def _segmenter() -> pysbd.Segmenter:
    """This thread's pysbd segmenter. A Segmenter keeps the text it is splitting in an
    attribute (``original_text``) and matches its sentences against it, so one shared by
    threads (the service's request threads) drops or misplaces sentences."""
    segmenter = getattr(_local, "segmenter", None)
    if segmenter is None:
        segmenter = _local.segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    return segmenter


def _split_line(line: str) -> list[tuple[int, int]]:
    """(start, end) spans of the sentences in one line, relative to the line."""
    marker = _LIST_MARKER.match(line)
    body_start = marker.end() if marker else 0
    spans: list[tuple[int, int]] = []
    body = line[body_start:]
    for piece_start, piece_end in _pieces(body):
        offset = body_start + piece_start
        for span in _segmenter().segment(body[piece_start:piece_end]):
            spans.extend(_split_missed_breaks(line, offset + span.start, offset + span.end))
    if marker and spans:
        # Keep "1. " with its item: the number is part of the list fragment.
        spans[0] = (len(line) - len(line.lstrip()), spans[0][1])
    return spans


def _split_missed_breaks(line: str, start: int, end: int) -> list[tuple[int, int]]:
    """Trimmed spans of line[start:end], split where pysbd missed a break."""
    cuts = [start]
    cuts += [start + m.start() for m in _MISSED_BREAK.finditer(line[start:end])]
    cuts.append(end)
    spans = []
    for start, end in zip(cuts, cuts[1:], strict=False):
        # pysbd's spans include trailing whitespace; offsets should cover the text only.
        while end > start and line[end - 1].isspace():
            end -= 1
        while start < end and line[start].isspace():
            start += 1
        if start < end:
            spans.append((start, end))
    return spans


def segment(text: str) -> list[Sentence]:
    """Split a document into content sentences, each with offsets into ``text``.

    Identical sentences are kept once (the first occurrence): some pages repeat
    their summary paragraph word for word.
    """
    sentences: list[Sentence] = []
    seen: set[str] = set()
    offset = 0
    for line in text.splitlines(keepends=True):
        line_start = offset
        offset += len(line)
        content = line.rstrip("\r\n")
        if is_boilerplate(content):
            continue
        dateline = _DATELINE.match(content)
        cut = dateline.end() if dateline else 0
        for start, end in _split_line(content[cut:]):
            sentence_text = content[cut + start : cut + end]
            if sentence_text in seen:
                continue
            seen.add(sentence_text)
            begin = line_start + cut + start
            sentences.append(Sentence(sentence_text, begin, begin + len(sentence_text)))
    return sentences


def segment_texts(text: str) -> list[str]:
    """The sentence strings of ``segment``; what labelled data stores in ``sentence``."""
    return [sentence.text for sentence in segment(text)]
