"""Segmentation rules, with edge cases taken from the seed articles."""

from pathlib import Path

import pytest

from pipeline import segment as segment_module
from pipeline.segment import is_boilerplate, segment, segment_texts

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
SEED_FILES = sorted(SEEDS.glob("*.txt"))


def seed(prefix: str) -> str:
    (path,) = SEEDS.glob(f"{prefix}_*.txt")
    return path.read_text(encoding="utf-8")


def test_abbreviation_before_a_name_does_not_split():
    line = "U.S. State Department Deputy Spokesperson Tommy Pigott backed Japan."
    assert segment_texts(line) == [line]


def test_middle_initial_does_not_split():
    line = "A scholar who advised President George W. Bush on Asia urged patience."
    assert segment_texts(line) == [line]


def test_single_letter_name_before_pronoun_splits():
    line = "The envoy replied on the platform X. He called the threats unacceptable."
    assert segment_texts(line) == [
        "The envoy replied on the platform X.",
        "He called the threats unacceptable.",
    ]


def test_numbered_list_item_keeps_its_number():
    line = (
        "1. Official reaffirmation: U.S. State Department Deputy Spokesperson Tommy Pigott "
        "declared that Washington’s commitment is “the cornerstone of peace.”"
    )
    assert segment_texts(line) == [line]
    assert "1. Official reaffirmation: U.S. State Department" in " ".join(
        segment_texts(seed("002"))
    )


def test_headings_without_final_period_are_their_own_sentence():
    text = 'US "Shoulder-to-Shoulder" with Ally\nThe standoff took on global significance.\n'
    assert segment_texts(text) == [
        'US "Shoulder-to-Shoulder" with Ally',
        "The standoff took on global significance.",
    ]
    assert "Conclusion" in segment_texts(seed("002"))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ('He called it "unacceptable and deeply concerning."', "Beijing disagreed."),
        ("Glass called the actions “very unhelpful.”", "Tokyo welcomed the remark."),
    ],
)
def test_quote_closing_a_sentence_stays_with_it(first, second):
    assert segment_texts(f"{first} {second}") == [first, second]


def test_em_dashes_do_not_split():
    line = (
        "Washington has only just patched up its trade truce with Beijing "
        "— and few in the cabinet want to reopen it."
    )
    assert segment_texts(line) == [line]


def test_repeated_paragraph_keeps_each_sentence_once():
    text = seed("004")
    assert text.count("Shigeo Yamada, Japan’s ambassador in Washington, asked") == 2
    sentences = segment_texts(text)
    assert len(sentences) == len(set(sentences))
    yamada = [s for s in sentences if s.startswith("Shigeo Yamada")]
    assert len(yamada) == 1


@pytest.mark.parametrize(
    "line",
    [
        " date 2025-12-07 https://sputnikglobe.com/20251207/japan-pleads-for-us-backing.html",
        "https://www.newsmax.com/world/globaltalk/japan-china/2025/11/20/id/1234/",
        "© 2025 Newsmax. All rights reserved.",
        "One thought on “Allies Close Ranks as Beijing Turns Up the Pressure”",
    ],
)
def test_non_content_lines_are_dropped(line):
    assert is_boilerplate(line)
    assert segment_texts(f"{line}\nJapan protested.\n") == ["Japan protested."]


def test_seed_boilerplate_never_becomes_a_sentence():
    sentences = [s for path in SEED_FILES for s in segment_texts(path.read_text("utf-8"))]
    assert not [s for s in sentences if "https://" in s or "All rights reserved" in s]
    assert not [s for s in sentences if s.startswith("One thought on")]


def test_headline_starting_with_no_comment_is_kept():
    line = "No comment on Taiwan from the White House as China pressures Japan"
    assert segment_texts(line) == [line]


def test_dateline_prefix_is_cut():
    sentences = segment(seed("000"))
    assert sentences[0].text.startswith("Japan has issued a forceful")
    assert not any("CaliToday" in s.text for s in sentences)


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.name)
def test_offsets_point_at_the_sentence_text(path):
    text = path.read_text(encoding="utf-8")
    sentences = segment(text)
    assert sentences
    for sentence in sentences:
        assert text[sentence.start : sentence.end] == sentence.text
        assert sentence.text == sentence.text.strip()


def test_offsets_after_dateline_list_marker_and_crlf():
    text = "Reuters (14/11/2025): Japan protested.\r\n  2) Tokyo held firm. It said so.\r\n"
    sentences = segment(text)
    assert [s.text for s in sentences] == ["Japan protested.", "2) Tokyo held firm.", "It said so."]
    assert all(text[s.start : s.end] == s.text for s in sentences)


def test_threads_segmenting_at_once_each_get_their_own_sentences():
    """The service splits /score documents in many request threads at once. A pysbd
    Segmenter keeps the text it is splitting in an attribute, so one shared by threads
    matched sentences against another thread's text and dropped them (found by
    `make load`: /score answers missing predictions under 16 clients)."""
    import threading

    documents = [
        " ".join(
            f"Officials in city {doc} said on day {day} that talks would go on."
            for day in range(12)
        )
        for doc in range(64)
    ]
    expected = [segment_texts(document) for document in documents]
    results: dict[int, list[str]] = {}

    def worker(first: int) -> None:
        for index in range(first, len(documents), 8):
            for _ in range(5):
                got = segment_texts(documents[index])
                if got != expected[index]:
                    results[index] = got
                    return

    threads = [threading.Thread(target=worker, args=(first,)) for first in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(sentences) == 12 for sentences in expected)
    assert results == {}


# A paragraph of our own, with the abbreviations and initials pysbd must not split at.
LONG_PARAGRAPH = (
    "On Tuesday, Mr. Abe's successor told the Diet that the U.S. alliance was unchanged. "
    "A spokesperson in Beijing called the remarks “a grave provocation.” "
    "Analysts at a think tank in Washington, D.C. said the row could last until Jan. 2026, "
    "citing Gen. Tanaka's briefing on Sunday! "
    "Would Tokyo budge? "
    "The envoy replied on the platform X. He said talks were still possible (as before.) "
    "Exports of dual-use items fell by 4.5 per cent in the first month. "
)


@pytest.mark.parametrize("repeats", [1, 40, 150])
def test_a_long_line_is_cut_first_only_where_pysbd_also_ends_a_sentence(repeats, monkeypatch):
    # Numbered copies, so no sentence repeats word for word (repeats are kept once).
    line = " ".join(LONG_PARAGRAPH.replace("by 4.5", f"by {i}.5") for i in range(repeats))
    chunked = segment(line)
    if repeats > 1:
        assert len(line) > 2000 and len(segment_module._pieces(line)) > 1
    monkeypatch.setattr(segment_module, "LONG_LINE", 10**9)  # pysbd on the whole line
    assert chunked == segment(line)
    # Six sentences a paragraph (pysbd keeps "(as before.) Exports ..." together); only
    # the last differs between copies, the other five repeat and are kept once.
    assert len(chunked) == 5 + repeats


def test_pieces_cover_the_line_and_cut_only_at_certain_sentence_ends():
    line = " ".join([LONG_PARAGRAPH] * 60)
    pieces = segment_module._pieces(line)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(line)
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False))
    for _, end in pieces[:-1]:
        before = line[:end].rsplit(" ", 1)[-1]
        assert before[:3].isalpha() and before[:3].islower(), before
        assert before.rstrip("”’'\"")[-1] in ".!?", before
    assert segment_module._pieces("No end here " * 400) == [(0, 4800)]  # nothing certain
