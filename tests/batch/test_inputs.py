"""Reading dated documents: JSONL, CSV, .txt folders, manifests, and every reject reason."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from batch.inputs import (
    Document,
    InputError,
    check_inputs,
    count_documents,
    read_inputs,
)
from pipeline.records import Problem

D = dt.date


def split(items):
    items = list(items)
    return [i for i in items if isinstance(i, Document)], [
        str(i) for i in items if isinstance(i, Problem)
    ]


def test_jsonl_fields_dates_and_optional_fields(tmp_path: Path, corpus) -> None:
    path = corpus.write_jsonl(tmp_path / "in.jsonl", corpus.articles)

    documents, rejects = split(read_inputs([path]))

    assert rejects == []
    assert [d.id for d in documents] == ["a1", "a2", "a3", "a4"]
    # A date-time counts by its own calendar date.
    assert [d.date for d in documents] == [D(2025, 11, 10), D(2025, 11, 11), D(2025, 11, 11),
                                           D(2025, 11, 13)]  # fmt: skip
    assert (documents[2].source, documents[3].url, documents[3].title) == (
        None, "https://example.invalid/a4", "Ferries resume",
    )  # fmt: skip
    assert documents[1].text == corpus.articles[1]["text"]
    assert (documents[1].file, documents[1].line) == (str(path), 2)


def test_csv_and_folder_give_the_same_documents(tmp_path: Path, corpus) -> None:
    from_csv, rejects = split(read_inputs([corpus.write_csv(tmp_path / "in.csv", corpus.articles)]))
    assert rejects == []
    from_folder, rejects = split(
        read_inputs([corpus.write_folder(tmp_path / "txt", corpus.articles)])
    )
    assert rejects == []

    assert [(d.id, d.date, d.text) for d in from_csv] == [
        (a["id"], D.fromisoformat(a["date"][:10]), a["text"]) for a in corpus.articles
    ]
    # Folder: id is the file name, date its prefix; files in name order.
    assert [(d.id, d.date) for d in from_folder] == [
        ("2025-11-10_a1", D(2025, 11, 10)), ("2025-11-11_a2", D(2025, 11, 11)),
        ("2025-11-11_a3", D(2025, 11, 11)), ("2025-11-13_a4", D(2025, 11, 13)),
    ]  # fmt: skip
    assert [d.text for d in from_folder] == [a["text"] for a in corpus.articles]


def test_csv_record_spanning_lines_reports_its_first_line(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        'id,date,text\nx1,2025-11-01,"Tokyo protested.\nBeijing replied."\nx2,11/02/2025,Japan.\n',
        encoding="utf-8",
    )
    documents, rejects = split(read_inputs([path]))

    assert [d.text for d in documents] == ["Tokyo protested.\nBeijing replied."]
    assert rejects == [f"{path}:4: date: cannot parse '11/02/2025' (expected YYYY-MM-DD)"]


def test_every_bad_record_is_a_reject_with_file_line_and_reason(tmp_path: Path) -> None:
    good = {"id": "ok", "date": "2025-11-01", "text": "Japan protested."}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"date": "2025-11-01", "text": "Japan."}),
        json.dumps({"id": "n1", "text": "Japan."}),
        json.dumps({"id": "n2", "date": "2025-13-01", "text": "Japan."}),
        json.dumps({"id": "n3", "date": "2025-11-01"}),
        json.dumps({"id": "n4", "date": "2025-11-01", "text": "   "}),
        "",
        json.dumps({"id": "ok", "date": "2025-11-02", "text": "China replied."}),
        json.dumps({"id": ["x"], "date": "2025-11-01", "text": "Japan."}),
        json.dumps({"id": "n5", "date": 20251101, "text": "Japan."}),
        json.dumps({"id": "n6", "date": "2025-11-01", "text": "Japan.", "source": 7}),
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open(path, "ab") as handle:
        handle.write(b'{"id": "bad-bytes", "date": "2025-11-01", "text": "\xff"}\n')

    documents, rejects = split(read_inputs([path]))

    assert [d.id for d in documents] == ["ok"]
    assert rejects == [
        f"{path}:2: not valid JSON: Expecting property name enclosed in double quotes (column 2)",
        f"{path}:3: not a JSON object (list)",
        f"{path}:4: id: missing",
        f"{path}:5: date: missing (give YYYY-MM-DD in the record, or --date)",
        f"{path}:6: date: cannot parse '2025-13-01' (expected YYYY-MM-DD)",
        f"{path}:7: text: missing",
        f"{path}:8: text: empty (only whitespace)",
        f"{path}:10: id: 'ok' repeats an earlier document",
        f"{path}:11: id: must be a string or an integer, got list",
        f"{path}:12: date: must be a string, got int",
        f"{path}:13: source: must be a string, got int",
        f"{path}:14: not UTF-8 text (byte 51)",
    ]


def test_default_date_fills_only_missing_dates(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps({"id": "a", "text": "Japan."}) + "\n"
        + json.dumps({"id": "b", "date": "2025-11-03", "text": "China."}) + "\n"
        + json.dumps({"id": "c", "date": "03/11/2025", "text": "China."}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    documents, rejects = split(read_inputs([path], D(2025, 11, 1)))

    assert [(d.id, d.date) for d in documents] == [("a", D(2025, 11, 1)), ("b", D(2025, 11, 3))]
    assert rejects == [f"{path}:3: date: cannot parse '03/11/2025' (expected YYYY-MM-DD)"]


def test_folder_dates_from_name_prefix_or_default(tmp_path: Path) -> None:
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "2025-11-05_tokyo.txt").write_text("Tokyo protested.")
    (folder / "undated.txt").write_text("Beijing replied.")
    (folder / "2025-02-30_bad.txt").write_text("Japan.")
    (folder / "2025-11-06_empty.txt").write_text("  \n")
    (folder / "notes.md").write_text("not a document")

    documents, rejects = split(read_inputs([folder]))
    assert [(d.id, d.date) for d in documents] == [("2025-11-05_tokyo", D(2025, 11, 5))]
    assert rejects == [
        f"{folder / '2025-02-30_bad.txt'}:1: file name date prefix: cannot parse '2025-02-30' "
        "(expected YYYY-MM-DD)",
        f"{folder / '2025-11-06_empty.txt'}:1: 2025-11-06_empty.txt: empty text",
        f"{folder / 'undated.txt'}:1: date: the file name has no YYYY-MM-DD prefix and no --date",
    ]

    documents, _ = split(read_inputs([folder], D(2025, 11, 1)))
    assert [(d.id, d.date) for d in documents] == [
        ("2025-11-05_tokyo", D(2025, 11, 5)), ("undated", D(2025, 11, 1)),
    ]  # fmt: skip


def test_manifest_rows_point_at_text_files(tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("Tokyo protested.", encoding="utf-8")
    manifest = tmp_path / "articles.csv"
    manifest.write_text(
        "id,date,path,note\n"
        "m1,2025-11-01,one.txt,extra columns are ignored\n"
        "m2,2025-11-02,missing.txt,\n",
        encoding="utf-8",
    )
    documents, rejects = split(read_inputs([manifest]))

    assert [(d.id, d.text) for d in documents] == [("m1", "Tokyo protested.")]
    assert rejects == [f"{manifest}:3: path: no such file {str(tmp_path / 'missing.txt')!r}"]


def test_csv_header_without_required_columns_is_one_reject(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("id,body\n1,Japan.\n", encoding="utf-8")

    assert split(read_inputs([path])) == (
        [], [f"{path}:1: header: missing column(s) ['text', 'date']; file not read"],
    )  # fmt: skip


def test_unreadable_inputs_fail_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        check_inputs([tmp_path / "absent.jsonl"])
    (tmp_path / "in.xlsx").write_text("x")
    with pytest.raises(InputError, match=r"unknown input kind '\.xlsx'"):
        check_inputs([tmp_path / "in.xlsx"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="folder has no .txt files"):
        check_inputs([tmp_path / "empty"])


def test_count_documents_for_progress(tmp_path: Path, corpus) -> None:
    paths = [
        corpus.write_jsonl(tmp_path / "in.jsonl", corpus.articles),
        corpus.write_csv(tmp_path / "in.csv", corpus.articles[:2]),
        corpus.write_folder(tmp_path / "txt", corpus.articles[:3]),
    ]
    assert count_documents(paths) == 4 + 2 + 3
