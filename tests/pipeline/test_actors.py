"""Actor detection: aliases, boundaries, spans and the alias-table contract."""

import pytest

from pipeline.actors import build_alias_table, detect_actors, find_mentions


def spans(sentence: str) -> list[tuple[str, str]]:
    mentions = find_mentions(sentence)
    assert all(sentence[m.start : m.end] == m.text for m in mentions)
    return [(m.actor, m.text) for m in mentions]


@pytest.mark.parametrize(
    ("alias", "actor"),
    [
        ("Prime Minister Takaichi", "japan"),
        ("Chief Cabinet Secretary", "japan"),
        ("Shigeo Yamada", "japan"),
        ("Self-Defense Forces", "japan"),
        ("Tokyo", "japan"),
        ("Beijing", "china"),
        ("Xi Jinping", "china"),
        ("Xue Jian", "china"),
        ("PLA", "china"),
        ("Global Times", "china"),
        ("White House", "us"),
        ("Tommy Pigott", "us"),
        ("Rahm Emanuel", "us"),
        ("George Glass", "us"),
        ("Chris Landau", "us"),
        ("Pentagon", "us"),
        ("Taipei", "taiwan"),
        ("Lai Ching-te", "taiwan"),
        ("William Lai", "taiwan"),
        ("Lai", "taiwan"),
        ("DPP", "taiwan"),
        ("Kuomintang", "taiwan"),
        ("Fu", "china"),
        ("MOFCOM", "china"),
        ("Kanai", "japan"),
        ("Bessent", "us"),
        ("Lavrov", "other"),
        ("Russia", "other"),
        ("European Union", "other"),
        ("Christopher Johnstone", "other"),
        ("Dennis Wilder", "other"),
    ],
)
def test_alias_maps_to_its_actor(alias, actor):
    assert spans(f"On Monday {alias} spoke about the row.") == [(actor, alias)]


def test_every_name_for_the_united_states():
    sentence = "The U.S. and the US, the United States and Washington all spoke."
    assert spans(sentence) == [
        ("us", "U.S."),
        ("us", "US"),
        ("us", "United States"),
        ("us", "Washington"),
    ]


@pytest.mark.parametrize(
    "sentence",
    [
        "Plug the USB stick into the usual port.",
        "He told us that business was slow.",
        "Let us wait and see.",
    ],
)
def test_no_false_positives_inside_words_or_on_the_pronoun(sentence):
    assert find_mentions(sentence) == []


def test_possessives_leave_the_name_as_the_mention():
    assert spans("Japan's envoy met China’s envoy.") == [("japan", "Japan"), ("china", "China")]


def test_longest_alias_wins():
    assert spans("South Korea postponed the summit.") == [("other", "South Korea")]


def test_a_country_inside_another_actors_body_is_that_actor():
    # Guideline, "Which rows exist": the office is China's, the party is Taiwan's.
    assert spans("China's Taiwan Affairs Office hit back.") == [
        ("china", "China"),
        ("china", "Taiwan Affairs Office"),
    ]
    assert detect_actors("The Chinese Nationalist Party (KMT) disagreed.") == ["taiwan"]


@pytest.mark.parametrize("name", ["President Lai Ching-te", "President Xi Jinping"])
def test_a_title_before_a_full_name_is_one_mention(name):
    # "President Lai" and "Lai Ching-te" overlap; the leftmost match must not cut the name.
    assert [text for _, text in spans(f"{name} spoke on Monday.")] == [name]


def test_former_official_speaks_for_themselves():
    sentence = "Christopher Johnstone, a former senior White House official, said so."
    assert spans(sentence) == [("other", "Christopher Johnstone"), ("other", "White House")]
    assert detect_actors(sentence) == ["other"]


def test_former_title_ends_before_the_verb():
    sentence = "Former Japanese prime minister Yukio Hatoyama urged Tokyo to apologise."
    assert "japan" in detect_actors(sentence)


def test_former_title_with_an_abbreviation():
    sentence = "Kevin Maher, a former U.S. State Department official, said Japan was right."
    assert "us" not in detect_actors(sentence)


def test_excluded_names_are_not_mentions():
    assert spans("The Washington Post said the Korean Peninsula was calm.") == []


def test_hyphenated_compounds_give_one_mention_per_actor():
    assert spans("The U.S.-Japan alliance held after the Trump–Xi meeting.") == [
        ("us", "U.S."),
        ("japan", "Japan"),
        ("us", "Trump"),
        ("china", "Xi"),
    ]


def test_detect_actors_uses_canonical_order():
    sentence = "Taipei and Washington watched as Beijing pressed Tokyo."
    assert detect_actors(sentence) == ["japan", "china", "us", "taiwan"]


def test_custom_table_matches_case_rules_and_excludes():
    table = build_alias_table({"japan": ["Tokyo"], "other": ["analysts"], "exclude": ["Tokyo Bay"]})
    mentions = find_mentions("ANALYSTS in Tokyo watched Tokyo Bay and tokyo.", table)
    assert [(m.actor, m.text) for m in mentions] == [("other", "ANALYSTS"), ("japan", "Tokyo")]


def test_alias_listed_for_two_actors_is_rejected():
    with pytest.raises(ValueError, match="'Seoul'.*'japan'.*'other'"):
        build_alias_table({"japan": ["Tokyo", "Seoul"], "other": ["Seoul"]})


def test_alias_differing_only_in_case_is_rejected():
    with pytest.raises(ValueError, match="tokyo"):
        build_alias_table({"japan": ["Tokyo"], "other": ["tokyo"]})


def test_unknown_actor_key_is_rejected():
    with pytest.raises(ValueError, match="unknown actor key.*korea"):
        build_alias_table({"japan": ["Tokyo"], "korea": ["Seoul"]})
