"""params.yaml sections: every bad value fails early and names its dotted key."""

import pytest

from pipeline.config import ConfigError, StrictParams, load_section, parse_section, read_params
from pipeline.prepare import PrepareParams

GOOD = {
    "validation_fraction": 0.15,
    "seed": 13,
    "leakage_jaccard": 0.6,
    "phrase_leak_words": 7,
    "template_overlap": 0.7,
    "consistency_jaccard": 0.6,
    "profile": {"words_mean": {"target": 30.0, "tolerance": 6.0}},
}


def test_good_section_parses_with_defaults():
    params = parse_section(dict(GOOD, leakage_jaccard=1), "prepare", PrepareParams)
    expected = dict(GOOD, leakage_jaccard=1)
    assert params == PrepareParams(**expected, allow_skipping_invalid_rows=False)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({k: v for k, v in GOOD.items() if k != "seed"}, "missing key prepare.seed"),
        (dict(GOOD, sed=13), "unknown key(s) prepare.sed"),
        (dict(GOOD, seed="13"), "prepare.seed must be int"),
        (dict(GOOD, seed=True), "prepare.seed must be int"),
        (dict(GOOD, validation_fraction=False), "prepare.validation_fraction must be float"),
        (dict(GOOD, allow_skipping_invalid_rows="yes"), "prepare.allow_skipping_invalid_rows"),
        (dict(GOOD, validation_fraction=0.7), "prepare.validation_fraction must be in (0, 0.5)"),
        (dict(GOOD, leakage_jaccard=0), "prepare.leakage_jaccard must be in (0, 1]"),
        (
            dict(GOOD, profile={"quote": {"target": 0.3}}),
            "missing key prepare.profile.quote.tolerance",
        ),
        (
            dict(GOOD, profile={"quote": {"target": "a", "tolerance": 0.1}}),
            "prepare.profile.quote.target must be float",
        ),
    ],
)
def test_bad_value_raises_config_error_naming_the_key(raw, message):
    with pytest.raises(ConfigError) as caught:
        parse_section(raw, "prepare", PrepareParams)
    assert message in str(caught.value)


def test_section_that_is_not_a_mapping_is_rejected():
    with pytest.raises(ConfigError, match="section 'prepare' must be a mapping"):
        parse_section([0.15, 13], "prepare", PrepareParams)


def test_load_section_names_the_file_when_the_section_is_missing(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("train:\n  seed: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"missing section 'prepare' in .*params\.yaml"):
        load_section("prepare", PrepareParams, params_file)


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("5e-05", 5e-05),  # what `dvc exp run -S train.learning_rate=5e-5` writes
        ("1e3", 1000.0),
        ("1.0e-4", 1.0e-4),
        ("-2E+2", -200.0),
        ("0.15", 0.15),
        ("'5e-05'", "5e-05"),  # quoted: still a string
        ("5e", "5e"),
    ],
)
def test_numbers_read_as_dvc_reads_them(tmp_path, written, value):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(f"train:\n  learning_rate: {written}\n", encoding="utf-8")
    assert read_params(params_file)["train"]["learning_rate"] == value


def test_exponent_without_a_dot_passes_a_strict_float(tmp_path):
    class Rate(StrictParams):
        learning_rate: float

    params_file = tmp_path / "params.yaml"
    params_file.write_text("train:\n  learning_rate: 5e-05\n", encoding="utf-8")
    assert load_section("train", Rate, params_file).learning_rate == 5e-05
