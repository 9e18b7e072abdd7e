"""Seed leakage and template detection on planted pairs."""

import pytest

from pipeline.checks import find_leaks, find_phrase_leaks, find_templates, normalise

# Stand-ins for protected (test-set) sentences, written for this test.
SEED = (
    "The ministry in Beijing branded the prime minister’s answer “reckless” and a "
    "“gross provocation”, insisting that Tokyo withdraw it at once."
)
OTHER_SEED = "Seoul kept a careful silence throughout the week."


def test_normalise_folds_case_quotes_and_punctuation():
    assert normalise("China’s “EGREGIOUS” — remark!") == normalise('china\'s "egregious" - remark')


def test_exact_copy_is_a_leak():
    (pair,) = find_leaks([SEED], [SEED, OTHER_SEED], 0.6)
    assert (pair.first, pair.second, pair.score) == (SEED, SEED, 1.0)


def test_near_copy_with_words_punctuation_and_case_changed_is_a_leak():
    near = (
        'THE MINISTRY IN BEIJING BRANDED THE PRIME MINISTER\'S ANSWER "RECKLESS" AND A '
        '"GROSS PROVOCATION" -- INSISTING THAT TOKYO WITHDRAW IT IMMEDIATELY!'
    )
    (pair,) = find_leaks([near], [SEED, OTHER_SEED], 0.6)
    assert (pair.first, pair.second) == (near, SEED)
    assert 0.6 <= pair.score < 1.0


def test_unrelated_sentence_on_the_same_event_is_not_a_leak():
    other = "Beijing summoned Japan's ambassador and demanded that Takaichi retract her words."
    assert find_leaks([other], [SEED, OTHER_SEED], 0.6) == []


def test_sentences_differing_by_swapped_names_and_numbers_are_templates():
    first = (
        "Speaking to reporters on Tuesday, Trump said that Washington would stand firmly "
        "beside Tokyo in any crisis over the Taiwan Strait and would not bow to Beijing."
    )
    second = first.replace("Tuesday", "Friday").replace("Trump", "Biden")
    third = (
        "Japan said 4 Chinese coast guard ships entered the waters around the Senkaku "
        "Islands for several hours, the longest incursion recorded this year."
    )
    fourth = third.replace("4", "12")
    pairs = find_templates([first, second, third, fourth], 0.7)
    assert {frozenset((p.first, p.second)) for p in pairs} == {
        frozenset((first, second)),
        frozenset((third, fourth)),
    }
    assert len(pairs) == 2  # each pair reported once


def test_different_sentences_about_the_same_event_are_not_templates():
    sentences = [
        "China summoned Japan's ambassador in Beijing over Takaichi's remarks on Taiwan.",
        "Beijing's foreign ministry lodged a stern protest after the prime minister's comments.",
        "China summoned Japan's ambassador on Friday, state media reported.",
    ]
    assert find_templates(sentences, 0.7) == []


def test_copied_clause_inside_a_new_sentence_is_a_phrase_leak():
    copied = (
        "Analysts agree that the ministry in Beijing branded the prime minister’s answer reckless."
    )
    (pair,) = find_phrase_leaks([copied], [SEED, OTHER_SEED], 7)
    assert pair.second == SEED
    assert "[shared: " in pair.first and "branded the prime minister" in pair.first


def test_allowlisted_set_phrase_is_not_a_phrase_leak():
    shared_name = "On Friday the ministry in Beijing branded the prime minister’s trip a stunt."
    assert find_phrase_leaks([shared_name], [SEED], 7) != []
    allowed = ["The ministry in Beijing branded the prime minister's"]
    assert find_phrase_leaks([shared_name], [SEED], 7, allowed) == []
    assert find_phrase_leaks(["Seoul kept quiet."], [SEED], 7) == []


def test_label_conflicts_between_near_duplicates():
    from pipeline.checks import find_label_conflicts
    from pipeline.records import LabelledRow

    def row(rid, sentence, actor, stance):
        return LabelledRow(id=rid, doc="d", sentence=sentence, actor=actor, stance=stance)

    first = "China's actions were not conducive to stable ties with Japan."
    second = "China's actions were not conducive to stable ties, Japan said."
    rows = [
        row("a-china", first, "china", "hostile"),
        row("b-china", second, "china", "neutral"),
        row("a-japan", first, "japan", "neutral"),
        row("b-japan", second, "japan", "neutral"),
        row("c-china", "Beijing announced new export rules for rare earths.", "china", "hostile"),
    ]
    conflicts = find_label_conflicts(rows, 0.6)
    assert [(c.key, c.actor) for c in conflicts] == [(("a-china", "b-china"), "china")]
    # words: china s actions were not conducive to stable ties japan + with / said
    assert conflicts[0].jaccard == pytest.approx(10 / 12)


def test_conflict_allowlist_needs_a_reason(tmp_path):
    from pipeline.checks import read_conflict_allowlist

    path = tmp_path / "allow.txt"
    path.write_text("# comment\nb-x a-x the second names a hostile act\n", encoding="utf-8")
    assert read_conflict_allowlist(path) == {("a-x", "b-x"): "the second names a hostile act"}
    path.write_text("a-x b-x\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"allow\.txt:1: expected"):
        read_conflict_allowlist(path)
