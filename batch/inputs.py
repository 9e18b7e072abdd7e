"""Dated documents from JSONL, CSV or a folder of .txt files, read lazily and checked.

Every input yields ``Document``s and, for anything that cannot be scored, ``Problem``s
(pipeline.records, as for labelled data) that say ``file:line: reason``; nothing is
dropped silently. Fields of a JSONL or CSV record: ``id``, ``date`` (``YYYY-MM-DD``, or
an ISO date-time whose date is taken), ``text``, and optionally ``source``, ``url``,
``title``. Instead of ``text`` a record may give ``path``, a text file relative to the
input file's folder (a manifest of article files). Other fields are ignored. In a
folder, each ``*.txt`` file is one document: its id is the file name without ``.txt``,
its date the name's ``YYYY-MM-DD`` prefix. ``default_date`` (the CLI's ``--date``)
dates any document that has no date of its own.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.records import Problem

JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv",)
TEXT_SUFFIX = ".txt"
OPTIONAL_FIELDS = ("source", "url", "title")
_NAME_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?=$|[^0-9])")


class InputError(ValueError):
    """An input that cannot be read at all (missing, or of an unknown kind)."""


@dataclass(frozen=True)
class Document:
    id: str
    date: dt.date
    text: str
    source: str | None = None
    url: str | None = None
    title: str | None = None
    file: str = ""  # where it was read from: the input file (or .txt file) and line
    line: int = 1


class RecordError(ValueError):
    """One record cannot be scored; the message is the reason."""


def input_kind(path: Path) -> str:
    """``jsonl``, ``csv`` or ``folder``; InputError for anything else."""
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in CSV_SUFFIXES:
        return "csv"
    raise InputError(
        f"{path}: unknown input kind {suffix or '(no suffix)'!r}; "
        "give a .jsonl or .csv file or a folder of .txt files"
    )


def check_inputs(paths: Iterable[Path]) -> list[Path]:
    """The inputs, each checked to be readable (InputError naming the first bad one)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no input given")
    for path in paths:
        kind = input_kind(path)
        if kind == "folder" and not any(path.glob(f"*{TEXT_SUFFIX}")):
            raise InputError(f"{path}: folder has no {TEXT_SUFFIX} files")
    return paths


def parse_date(value: object, field: str = "date") -> dt.date:
    """``YYYY-MM-DD``, or the date of an ISO 8601 date-time; RecordError otherwise."""
    if not isinstance(value, str):
        raise RecordError(f"{field}: must be a string, got {type(value).__name__}")
    text = value.strip()
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        raise RecordError(f"{field}: cannot parse {value!r} (expected YYYY-MM-DD)") from None


def _optional_str(record: dict, field: str) -> str | None:
    value = record.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordError(f"{field}: must be a string, got {type(value).__name__}")
    return value


def read_text_file(path: Path) -> str:
    """A UTF-8 text file (a BOM is dropped); RecordError when unreadable or blank."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise RecordError(f"path: no such file {str(path)!r}") from None
    except IsADirectoryError:
        raise RecordError(f"path: {str(path)!r} is a folder, not a text file") from None
    except UnicodeDecodeError as error:
        raise RecordError(f"{path.name}: not UTF-8 text (byte {error.start})") from None
    if not text.strip():
        raise RecordError(f"{path.name}: empty text")
    return text


def document_from_record(
    record: dict, base_dir: Path, default_date: dt.date | None, file: str, line: int
) -> Document:
    """A Document from one JSONL object or CSV row; RecordError naming the field."""
    raw_id = record.get("id")
    if raw_id is None or raw_id == "":
        raise RecordError("id: missing")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise RecordError(f"id: must be a string or an integer, got {type(raw_id).__name__}")
    doc_id = str(raw_id).strip()
    if not doc_id:
        raise RecordError("id: empty")

    raw_date = record.get("date")
    if raw_date is None or (isinstance(raw_date, str) and not raw_date.strip()):
        if default_date is None:
            raise RecordError("date: missing (give YYYY-MM-DD in the record, or --date)")
        date = default_date
    else:
        date = parse_date(raw_date)

    text, path = record.get("text"), record.get("path")
    if text not in (None, "") and path not in (None, ""):
        raise RecordError("text and path: give one of them, not both")
    if path not in (None, ""):
        if not isinstance(path, str):
            raise RecordError(f"path: must be a string, got {type(path).__name__}")
        text = read_text_file(base_dir / path)
    elif text is None or text == "":
        raise RecordError("text: missing")
    elif not isinstance(text, str):
        raise RecordError(f"text: must be a string, got {type(text).__name__}")
    elif not text.strip():
        raise RecordError("text: empty (only whitespace)")

    return Document(
        id=doc_id,
        date=date,
        text=text,
        file=file,
        line=line,
        **{field: _optional_str(record, field) for field in OPTIONAL_FIELDS},
    )


def read_jsonl(path: Path, default_date: dt.date | None) -> Iterator[Document | Problem]:
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                yield Problem(str(path), number, f"not UTF-8 text (byte {error.start})")
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                yield Problem(
                    str(path), number, f"not valid JSON: {error.msg} (column {error.colno})"
                )
                continue
            if not isinstance(record, dict):
                yield Problem(str(path), number, f"not a JSON object ({type(record).__name__})")
                continue
            try:
                yield document_from_record(record, path.parent, default_date, str(path), number)
            except RecordError as error:
                yield Problem(str(path), number, str(error))


def _decoded_lines(handle, bad: set[int]) -> Iterator[str]:
    """Lines of a binary file as text; undecodable line numbers go into ``bad``."""
    for number, raw in enumerate(handle, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            bad.add(number)
            yield raw.decode("utf-8", errors="replace")


def read_csv(path: Path, default_date: dt.date | None) -> Iterator[Document | Problem]:
    """Rows of a CSV file with a header line; a record may span lines (quoted newlines).

    A reject names the line the record starts on.
    """
    bad: set[int] = set()
    with open(path, "rb") as handle:
        reader = csv.reader(_decoded_lines(handle, bad))
        try:
            header = next(reader)
        except StopIteration:
            yield Problem(str(path), 1, "empty file (no header line)")
            return
        except csv.Error as error:
            yield Problem(str(path), 1, f"not valid CSV: {error}")
            return
        header = [name.strip() for name in header]
        missing = [name for name in ("id",) if name not in header]
        if "text" not in header and "path" not in header:
            missing.append("text")
        if "date" not in header and default_date is None:
            missing.append("date")
        if missing:
            yield Problem(str(path), 1, f"header: missing column(s) {missing}; file not read")
            return
        ended = reader.line_num
        while True:
            start = ended + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield Problem(str(path), start, f"not valid CSV: {error}; rest of file not read")
                return
            ended = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            if any(start <= number <= ended for number in bad):
                yield Problem(str(path), start, "not UTF-8 text")
                continue
            if len(values) != len(header):
                reason = f"has {len(values)} fields, the header has {len(header)}"
                yield Problem(str(path), start, reason)
                continue
            record = dict(zip(header, values, strict=True))
            try:
                yield document_from_record(record, path.parent, default_date, str(path), start)
            except RecordError as error:
                yield Problem(str(path), start, str(error))


def read_folder(path: Path, default_date: dt.date | None) -> Iterator[Document | Problem]:
    """Each ``*.txt`` file of the folder (not its subfolders), in name order."""
    for file in sorted(path.glob(f"*{TEXT_SUFFIX}")):
        if not file.is_file():
            continue
        prefix = _NAME_DATE.match(file.name)
        try:
            if prefix:
                date = parse_date(prefix.group(1), "file name date prefix")
            elif default_date is not None:
                date = default_date
            else:
                raise RecordError("date: the file name has no YYYY-MM-DD prefix and no --date")
            text = read_text_file(file)
        except RecordError as error:
            yield Problem(str(file), 1, str(error))
            continue
        yield Document(id=file.name[: -len(TEXT_SUFFIX)], date=date, text=text, file=str(file))


READERS = {"jsonl": read_jsonl, "csv": read_csv, "folder": read_folder}


def read_inputs(
    paths: Iterable[Path], default_date: dt.date | None = None
) -> Iterator[Document | Problem]:
    """Documents and rejects of every input, in order; a repeated id is a reject."""
    seen: set[str] = set()
    for path in paths:
        path = Path(path)
        for item in READERS[input_kind(path)](path, default_date):
            if isinstance(item, Document):
                if item.id in seen:
                    reason = f"id: {item.id!r} repeats an earlier document"
                    yield Problem(item.file, item.line, reason)
                    continue
                seen.add(item.id)
            yield item


def count_documents(paths: Iterable[Path]) -> int:
    """About how many records the inputs hold (for progress and ETA): non-blank JSONL
    lines, CSV records, .txt files. Cheap: nothing is parsed as JSON or decoded."""
    total = 0
    for path in paths:
        path = Path(path)
        kind = input_kind(path)
        if kind == "folder":
            total += sum(1 for f in path.glob(f"*{TEXT_SUFFIX}") if f.is_file())
        elif kind == "jsonl":
            with open(path, "rb") as handle:
                total += sum(1 for line in handle if line.strip())
        else:
            # A broken file is reported by the reader; the count is only for progress.
            with (
                open(path, encoding="utf-8", errors="replace", newline="") as handle,
                contextlib.suppress(csv.Error),
            ):
                total += max(0, sum(1 for row in csv.reader(handle) if row) - 1)
    return total
