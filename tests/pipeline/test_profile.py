"""Corpus profile figures: each feature on hand-made sentences with hand-counted values."""

import pytest

from pipeline.profile import (
    adverbial_opening,
    has_quote,
    names_date,
    out_of_tolerance,
    profile,
    spelling,
)
from pipeline.records import LabelledRow


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ('The ministry said it was "deeply concerned" by the move.', True),
        ("The ministry said it was \u201cdeeply concerned\u201d by the move.", True),
        ("Tokyo's envoy left Beijing's foreign ministry without comment.", False),
    ],
)
def test_quote(sentence, expected):
    assert has_quote(sentence) is expected


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Officials met on Tuesday in Beijing.", True),
        ("The talks resumed in mid-November.", True),
        ("The ban took effect on Dec. 6 after a warning.", True),
        ("Tokyo may respond in kind.", False),  # the verb "may" is not the month
    ],
)
def test_date(sentence, expected):
    assert names_date(sentence) is expected


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("On Friday, the ministry lodged a protest.", True),
        ("Despite the warning, flights continued.", True),
        ('"But we will not retract," an aide said.', True),
        ("The ministry lodged a protest on Friday.", False),
    ],
)
def test_adverbial_opening(sentence, expected):
    assert adverbial_opening(sentence) is expected


def test_spelling():
    assert spelling("The defence ministry criticised the move.") == "british"
    assert spelling("The defense ministry criticized the move.") == "american"
    assert spelling("The ministry objected.") is None


def row(i: int, sentence: str, actor: str, stance: str, style: str = "wire") -> LabelledRow:
    return LabelledRow(
        id=f"r{i}-{actor}", doc="d", sentence=sentence, actor=actor, stance=stance, style=style
    )


def test_profile_figures():
    long = " ".join(["word"] * 45)
    rows = [
        row(1, "On Monday, Tokyo and Beijing traded barbs over Taiwan.", "japan", "supportive"),
        row(1, "On Monday, Tokyo and Beijing traded barbs over Taiwan.", "china", "hostile"),
        row(1, "On Monday, Tokyo and Beijing traded barbs over Taiwan.", "taiwan", "neutral"),
        row(2, long, "us", "hedging"),
        row(3, "Taipei says nothing", "taiwan", "supportive", style="headline"),
    ]
    figures = profile(rows)
    assert figures["sentences"] == 3 and figures["rows"] == 5
    assert figures["words_max"] == 45 and figures["words_median"] == 9
    assert figures["over_40_words"] == pytest.approx(1 / 3, abs=1e-4)
    assert figures["date"] == pytest.approx(1 / 3, abs=1e-4)
    assert figures["adverbial_opening"] == pytest.approx(1 / 3, abs=1e-4)
    assert figures["actors_3plus"] == pytest.approx(1 / 3, abs=1e-4)
    assert figures["headline_or_fragment"] == pytest.approx(1 / 3, abs=1e-4)
    assert figures["share_supportive"] == pytest.approx(0.4)
    assert figures["taiwan_neutral"] == pytest.approx(0.5)


def test_out_of_tolerance_names_the_feature():
    problems = out_of_tolerance({"quote": 0.10, "date": 0.2}, {"quote": 0.34, "date": 0.23},
                                {"quote": 0.1, "date": 0.1})  # fmt: skip
    assert problems == ["profile: quote = 0.100, target 0.34 +/- 0.1"]
