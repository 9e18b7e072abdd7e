"""The labelled-data contract: every problem names its file and line."""

import json
import logging
import re

import pytest

from pipeline.records import DataError, load_labelled


def row(sentence: str = "Tokyo refused to retract.", **changes) -> bytes:
    base = {"id": "d1-s1-japan", "doc": "d1", "sentence": sentence, "actor": "japan"}
    return json.dumps({**base, "stance": "supportive", **changes}).encode() + b"\n"


GOOD = row() + row(
    "Beijing summoned the ambassador.", id="d1-s2-china", actor="china", stance="hostile"
)


def write(tmp_path, *lines: bytes):
    path = tmp_path / "part.jsonl"
    path.write_bytes(GOOD + b"".join(lines))
    return path


def test_good_file_loads(tmp_path):
    tagged = row(
        "Taipei thanked Tokyo.", id="d1-s3-taiwan", actor="taiwan", style="wire",
        dispute="takaichi_2025",
    )  # fmt: skip
    rows = load_labelled(write(tmp_path, tagged))
    assert [(r.actor, r.stance) for r in rows] == [
        ("japan", "supportive"),
        ("china", "hostile"),
        ("taiwan", "supportive"),
    ]
    assert (rows[0].style, rows[2].style, rows[2].dispute) == (None, "wire", "takaichi_2025")


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (b'{"id": "x", "doc": \n', "invalid JSON"),
        (row("Seoul spoke.", id="d1-s3", actor="korea"), "actor"),
        (row("Seoul spoke.", id=7), "field 'id': Input should be a valid string (got 7)"),
        (row(["Seoul spoke."], id="d1-s3"), "field 'sentence'"),
        (row("Seoul spoke.", id="d1-s3", dispute=2013), "field 'dispute'"),
        (row("Seoul spoke.", id="d1-s3", stance="angry"), "stance"),
        (row("   ", id="d1-s3"), "sentence"),
        (row("Seoul spoke.", id="d1-s3", comment="check"), "comment"),
        (row("Seoul spoke."), "duplicate id 'd1-s1-japan' (first at "),
        (b'{"id": "x", "sentence": "Tokyo \xff"}\n', "not UTF-8"),
        (b"[1, 2]\n", "JSON object"),
    ],
    ids=[
        "json",
        "actor",
        "id-type",
        "sentence-type",
        "dispute-type",
        "stance",
        "blank",
        "extra",
        "duplicate-id",
        "utf8",
        "array",
    ],  # fmt: skip
)
def test_each_error_names_file_and_line(tmp_path, bad, words):
    path = write(tmp_path, bad)
    with pytest.raises(DataError) as caught:
        load_labelled(path)
    (problem,) = caught.value.problems
    assert (problem.path, problem.line) == (str(path), 3)
    assert words in problem.message
    assert f"{path}:3:" in str(caught.value)


def test_conflicting_stances_name_both_lines(tmp_path):
    path = write(tmp_path, row(id="d1-s1-japan-again", stance="hedging"))
    with pytest.raises(DataError) as caught:
        load_labelled(path)
    later, first = caught.value.problems
    assert later.line == 3
    assert "different stances" in later.message
    assert f"{path}:1" in later.message
    # Neither label can be trusted, so the first row is reported too.
    assert first.line == 1
    assert f"{path}:3" in first.message


def test_conflict_across_files_names_both_files(tmp_path):
    first = write(tmp_path)
    second = tmp_path / "other.jsonl"
    second.write_bytes(row(id="d2-s1-japan", stance="neutral"))
    with pytest.raises(
        DataError, match=rf"{re.escape(str(second))}:1: .*{re.escape(str(first))}:1"
    ):
        load_labelled([first, second])


def test_skipping_drops_and_logs_every_bad_row(tmp_path, caplog):
    path = write(
        tmp_path,
        row("Seoul spoke.", id="d1-s3", actor="korea"),
        b"{oops\n",
        row(id="d1-s1-japan-again", stance="hedging"),
    )
    with caplog.at_level(logging.WARNING, logger="pipeline.records"):
        rows = load_labelled(path, allow_skipping=True)
    # Both rows of the conflicting pair go: neither label can be trusted.
    assert [(r.sentence, r.actor) for r in rows] == [("Beijing summoned the ambassador.", "china")]
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 4
    for line in (1, 3, 4, 5):
        assert any(f"{path}:{line}:" in m for m in skipped)


def test_missing_file_is_a_problem_not_an_empty_set(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        load_labelled(tmp_path / "absent.jsonl")


def test_duplicate_id_across_files_names_both_and_skipping_keeps_the_first(tmp_path, caplog):
    first = write(tmp_path)
    second = tmp_path / "other.jsonl"
    second.write_bytes(row("Seoul spoke.", id="d1-s2-china", actor="other", stance="hedging"))
    with pytest.raises(DataError) as caught:
        load_labelled([first, second])
    (problem,) = caught.value.problems
    assert (problem.path, problem.line) == (str(second), 1)
    assert problem.message == f"duplicate id 'd1-s2-china' (first at {first}:2)"
    with caplog.at_level(logging.WARNING, logger="pipeline.records"):
        rows = load_labelled([first, second], allow_skipping=True)
    assert [r.actor for r in rows] == ["japan", "china"]


def test_truncated_last_line_says_so(tmp_path):
    whole = row("Seoul spoke.", id="d1-s3", actor="other", stance="neutral")
    path = write(tmp_path, whole[:-25])  # cut off mid-write: no closing brace, no newline
    with pytest.raises(DataError) as caught:
        load_labelled(path)
    (problem,) = caught.value.problems
    assert problem.line == 3
    assert "invalid JSON" in problem.message and "truncated?" in problem.message


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    lines = [
        b'{"id": "x1", "doc": \n',  # 3: corrupt
        row("Seoul spoke.", id="d1-s4", stance=3),  # 4: wrong type
        row("Seoul spoke again."),  # 5: duplicate id of line 1
        b"\n",  # 6: blank lines are allowed
    ]
    many = [row(f"Seoul spoke {i} times.", id=f"d9-{i}", actor="korea") for i in range(60)]
    path = write(tmp_path, *lines, *many, b'{"id": "x9"')  # 7-66: unknown actor; 67: cut off
    with pytest.raises(DataError) as caught:
        load_labelled(path)
    reported = [problem.line for problem in caught.value.problems]
    assert sorted(reported) == [3, 4, 5, *range(7, 67), 67]
    message = str(caught.value)
    assert message.startswith("64 problem(s) in labelled data:")
    for line in reported:
        assert f"{path}:{line}: " in message
