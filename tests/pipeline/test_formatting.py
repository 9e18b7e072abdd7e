"""Model input: the actor's mentions bracketed, the actor's name as first segment."""

import pytest

from pipeline.formatting import flat_input, mark_actor, model_input

SENTENCE = "Trump told Japan not to provoke China; the U.S. envoy in Tokyo was quiet."


@pytest.mark.parametrize(
    ("actor", "marked"),
    [
        ("us", "[Trump] told Japan not to provoke China; the [U.S.] envoy in Tokyo was quiet."),
        ("japan", "Trump told [Japan] not to provoke China; the U.S. envoy in [Tokyo] was quiet."),
        ("china", "Trump told Japan not to provoke [China]; the U.S. envoy in Tokyo was quiet."),
        ("taiwan", SENTENCE),
    ],
)
def test_mark_actor_brackets_exactly_that_actors_mentions(actor, marked):
    assert mark_actor(SENTENCE, actor) == marked


def test_possessive_stays_outside_the_brackets():
    assert (
        mark_actor("China’s envoy met Japan's envoy.", "china")
        == "[China]’s envoy met Japan's envoy."
    )


def test_model_input_is_actor_name_and_marked_sentence():
    assert model_input("Washington backed Tokyo.", "us") == (
        "United States",
        "[Washington] backed Tokyo.",
    )
    assert model_input("Analysts praised Tokyo.", "other") == (
        "another party",
        "[Analysts] praised Tokyo.",
    )
    assert flat_input("Washington backed Tokyo.", "japan") == "Japan | Washington backed [Tokyo]."


def test_mark_actor_rejects_an_unknown_actor():
    with pytest.raises(ValueError, match="unknown actor 'korea'"):
        mark_actor(SENTENCE, "korea")


def test_model_input_rejects_an_unknown_actor():
    with pytest.raises((KeyError, ValueError), match="korea"):
        model_input(SENTENCE, "korea")


def test_model_input_rejects_an_unknown_actor_with_value_error():
    with pytest.raises(ValueError, match="unknown actor"):
        model_input(SENTENCE, "korea")
