"""Scored files: the row schema, resumable writers (JSONL, CSV, Parquet) and a chunked reader.

One row per (document, sentence, actor). The format follows OUT's suffix:

- ``.jsonl`` / ``.csv``: one file, appended in commits. Each commit (the rows of whole
  documents) is one write followed by fsync, then its end offset is appended to a
  progress file beside OUT (``OUT.progress``). A rerun cuts OUT back to the last
  recorded offset (dropping what an interrupted commit may have left), skips the
  documents already in OUT and appends the rest. The progress file is removed when a
  run completes.
- ``.parquet``: a folder of part files, as Spark writes it (readers such as pandas,
  pyarrow and Spark read the folder as one table). Each part is written under a
  hidden temporary name and renamed into place, so an interrupted run leaves only
  whole parts.

Resuming refuses an OUT scored by another model: one file, one model.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.labels import STANCES
from pipeline.mlflow_model import OUTPUT_COLUMNS

logger = logging.getLogger(__name__)

# (name, kind): the columns of a scored file, in order. The model's own output columns
# (stance, score_<stance>, truncated) are the MLflow pyfunc's, so Spark's UDF fills them.
SCHEMA: tuple[tuple[str, str], ...] = (
    ("doc_id", "string"),
    ("date", "date"),
    ("source", "string"),
    ("sentence_index", "long"),
    ("start", "long"),
    ("end", "long"),
    ("sentence", "string"),
    ("actor", "string"),
    *((name, "string" if name == "stance" else "boolean" if name == "truncated" else "double")
      for name in OUTPUT_COLUMNS),
    ("model_name", "string"),
    ("model_version", "string"),
    ("mlflow_run_id", "string"),
)  # fmt: skip
COLUMNS: tuple[str, ...] = tuple(name for name, _ in SCHEMA)
KINDS: dict[str, str] = dict(SCHEMA)
MODEL_COLUMNS = ("model_name", "model_version", "mlflow_run_id")
SCORE_COLUMNS = tuple(f"score_{stance}" for stance in STANCES)
FORMATS = (".jsonl", ".csv", ".parquet")
PROGRESS_SUFFIX = ".progress"
PART_PREFIX = "part-"
READ_CHUNK_ROWS = 50_000


class OutputError(ValueError):
    """OUT cannot be written or resumed (wrong kind, another model, not a scored file)."""


@dataclass(frozen=True)
class ModelInfo:
    """Which model scored a row: registry name and version (or a path), training run."""

    name: str
    version: str | None
    run_id: str | None

    def columns(self) -> dict[str, str | None]:
        return dict(zip(MODEL_COLUMNS, (self.name, self.version, self.run_id), strict=True))


def output_format(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise OutputError(f"--out {out}: unknown format {suffix!r}; use one of {list(FORMATS)}")
    return suffix[1:]


def rejects_path(out: Path) -> Path:
    """Where the rejects of a run writing ``out`` go: beside it, ``<stem>.rejects.txt``."""
    return out.with_name(f"{out.stem}.rejects.txt")


def arrow_schema():
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "date": pa.date32(),
        "long": pa.int64(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
    }
    return pa.schema([(name, types[kind]) for name, kind in SCHEMA])


def spark_ddl(columns: Sequence[str] = COLUMNS) -> str:
    """The Spark DDL of ``columns`` (``"doc_id string, date date, ..."``)."""
    kinds = {"string": "string", "date": "date", "long": "bigint", "double": "double"}
    kinds["boolean"] = "boolean"
    return ", ".join(f"`{name}` {kinds[KINDS[name]]}" for name in columns)


# ---- text formats: values to and from strings ------------------------------------------


def _to_json_value(value):
    return value.isoformat() if isinstance(value, dt.date) else value


def _from_text(name: str, value):
    """A column value as read from JSONL (native) or CSV (string) into its Python type."""
    kind = KINDS[name]
    if value is None or (value == "" and kind != "string"):
        return None
    if kind == "string":
        return None if value == "" and name in ("source", *MODEL_COLUMNS) else str(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    if kind == "long":
        return int(value)
    if kind == "double":
        return float(value)
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError(f"{name}: expected true or false, got {value!r}")


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def encode_rows(rows: Sequence[dict], fmt: str, header: bool = False) -> bytes:
    """Rows as JSONL or CSV bytes (with the header line first when ``header``)."""
    if fmt == "jsonl":
        lines = (
            json.dumps({c: _to_json_value(row[c]) for c in COLUMNS}, ensure_ascii=False) + "\n"
            for row in rows
        )
        return "".join(lines).encode("utf-8")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(COLUMNS)
    writer.writerows([_csv_value(row[c]) for c in COLUMNS] for row in rows)
    return buffer.getvalue().encode("utf-8")


def _text_rows(path: Path, fmt: str) -> Iterator[dict]:
    """Rows of a JSONL or CSV scored file, typed; OutputError naming ``file:line`` for
    anything that is not a row of this schema."""
    with open(path, encoding="utf-8", newline="") as text:
        if fmt == "jsonl":
            for number, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if set(record) != set(COLUMNS):
                        raise ValueError(f"columns {sorted(record)} are not {list(COLUMNS)}")
                    yield {c: _from_text(c, record[c]) for c in COLUMNS}
                except (ValueError, TypeError) as error:
                    raise OutputError(f"{path}:{number}: not a scored row: {error}") from None
        else:
            reader = csv.reader(text)
            header = next(reader, None)
            if header is None:
                return
            if tuple(header) != COLUMNS:
                raise OutputError(f"{path}:1: header {header} is not {list(COLUMNS)}")
            for values in reader:
                try:
                    if len(values) != len(COLUMNS):
                        raise ValueError(f"{len(values)} fields, expected {len(COLUMNS)}")
                    yield {c: _from_text(c, v) for c, v in zip(COLUMNS, values, strict=True)}
                except ValueError as error:
                    raise OutputError(
                        f"{path}:{reader.line_num}: not a scored row: {error}"
                    ) from None


# ---- parquet folders ---------------------------------------------------------------------


def parquet_parts(folder: Path) -> list[Path]:
    """The data files of a Parquet folder (hidden and ``_`` files are not data)."""
    return sorted(
        p
        for p in folder.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    )


def _parquet_chunks(folder: Path, columns: Sequence[str]) -> Iterator[list[dict]]:
    import pyarrow.parquet as pq

    for part in parquet_parts(folder):
        parquet = pq.ParquetFile(part)
        missing = set(columns) - set(parquet.schema_arrow.names)
        if missing:
            raise OutputError(f"{part}: not a scored file (no column(s) {sorted(missing)})")
        for batch in parquet.iter_batches(batch_size=READ_CHUNK_ROWS, columns=list(columns)):
            yield batch.to_pylist()


def read_chunks(path: Path, columns: Sequence[str] = COLUMNS) -> Iterator[list[dict]]:
    """A scored file (or Parquet folder) as lists of row dicts, ``READ_CHUNK_ROWS`` at a time."""
    path = Path(path)
    fmt = output_format(path)
    if not path.exists():
        raise OutputError(f"{path}: no such scored file")
    if fmt == "parquet":
        if not path.is_dir():
            yield from _single_parquet(path, columns)
            return
        yield from _parquet_chunks(path, columns)
        return
    chunk: list[dict] = []
    for row in _text_rows(path, fmt):
        chunk.append({c: row[c] for c in columns})
        if len(chunk) >= READ_CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _single_parquet(path: Path, columns: Sequence[str]) -> Iterator[list[dict]]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_CHUNK_ROWS, columns=columns):
        yield batch.to_pylist()


def read_frame(path: Path, columns: Sequence[str] = COLUMNS):
    """A whole scored file as a pandas DataFrame (tests and small files)."""
    import pandas as pd

    rows = [row for chunk in read_chunks(path, columns) for row in chunk]
    return pd.DataFrame(rows, columns=list(columns))


def scored_state(path: Path) -> tuple[set[str], set[tuple]]:
    """The document ids in a scored file and the models (name, version, run id) that
    scored them."""
    doc_ids: set[str] = set()
    models: set[tuple] = set()
    for chunk in read_chunks(path, ("doc_id", *MODEL_COLUMNS)):
        for row in chunk:
            doc_ids.add(row["doc_id"])
            models.add(tuple(row[c] for c in MODEL_COLUMNS))
    return doc_ids, models


def check_same_model(out: Path, models: set[tuple], model: ModelInfo) -> None:
    ours = (model.name, model.version, model.run_id)
    others = sorted(m for m in models if m != ours)
    if others:
        raise OutputError(
            f"{out} holds rows scored by another model {others[0]} (this run: {ours}): "
            "choose another --out, or move the old file away"
        )


# ---- writers -------------------------------------------------------------------------------


class Writer:
    """Appends the rows of whole documents to OUT; ``done`` holds the ids already in OUT."""

    done: set[str]

    def commit(self, rows: list[dict]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """The run completed: flush what is buffered and drop resume bookkeeping."""

    def close(self) -> None:
        """The run stopped (finished or not): release files, keep what was committed."""


def end_of_last_line(path: Path, block: int = 1 << 16) -> int:
    """The offset just past the last newline of ``path`` (0 when it has none)."""
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - block)
            handle.seek(start)
            found = handle.read(end - start).rfind(b"\n")
            if found >= 0:
                return start + found + 1
            end = start
    return 0


class TextWriter(Writer):
    """JSONL or CSV, committed with fsync and an offset in ``OUT.progress``."""

    def __init__(self, out: Path, fmt: str, model: ModelInfo):
        self.out, self.fmt = out, fmt
        self.progress = out.with_name(out.name + PROGRESS_SUFFIX)
        self.done = set()
        if not out.exists():
            self.progress.unlink(missing_ok=True)  # left by a run whose OUT was removed
        else:
            if not out.is_file():
                raise OutputError(f"{out} exists and is not a file")
            self._cut_to_last_commit()
            self.done, models = scored_state(out)
            check_same_model(out, models, model)
            if self.done:
                logger.info("resuming %s: %d document(s) already scored", out, len(self.done))
        out.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.needs_header = fmt == "csv" and os.fstat(self.fd).st_size == 0

    def _cut_to_last_commit(self) -> None:
        size = self.out.stat().st_size
        offset = self._last_offset()
        if offset is None:  # no progress file: the last run finished, or OUT is foreign
            offset = end_of_last_line(self.out)
        if offset > size:
            raise OutputError(
                f"{self.progress} says {self.out} holds {offset} bytes, it has {size}: "
                "the two do not belong together; move them away"
            )
        if offset < size:
            logger.warning("%s: cutting %d byte(s) after the last commit", self.out, size - offset)
            os.truncate(self.out, offset)

    def _last_offset(self) -> int | None:
        if not self.progress.exists():
            return None
        offset = None
        for line in self.progress.read_text(encoding="utf-8").splitlines():
            try:
                offset = int(json.loads(line)["offset"])
            except (ValueError, KeyError, TypeError):
                break  # a torn last line: the commit before it stands
        return offset

    def commit(self, rows: list[dict]) -> None:
        if not rows and not self.needs_header:
            return
        data = encode_rows(rows, self.fmt, header=self.needs_header)
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        os.fsync(self.fd)
        self.needs_header = False
        offset = os.fstat(self.fd).st_size
        with open(self.progress, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"offset": offset, "time": round(time.time(), 3)}) + "\n")

    def finish(self) -> None:
        if self.needs_header:
            self.commit([])
        self.progress.unlink(missing_ok=True)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class ParquetWriter(Writer):
    """A folder of part files; rows are buffered to ``part_rows`` per part."""

    def __init__(self, out: Path, model: ModelInfo, part_rows: int = 20_000):
        self.out, self.part_rows = out, part_rows
        self.buffer: list[dict] = []
        # Parts are read in name order: a run's name must sort after every earlier run's,
        # also when a resumed run starts within the same second (nanoseconds, then a
        # random tail against clock ties).
        self.run = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        self.sequence = 0
        self.done = set()
        if out.exists():
            if not out.is_dir():
                raise OutputError(f"{out} exists and is not a folder of Parquet parts")
            for stale in out.glob(f".{PART_PREFIX}*.tmp"):
                stale.unlink()  # a part an interrupted run did not finish
            self.done, models = scored_state(out)
            check_same_model(out, models, model)
            if self.done:
                logger.info("resuming %s: %d document(s) already scored", out, len(self.done))
        out.mkdir(parents=True, exist_ok=True)

    def commit(self, rows: list[dict]) -> None:
        self.buffer.extend(rows)
        if len(self.buffer) >= self.part_rows:
            self._write_part()

    def _write_part(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.buffer:
            return
        name = f"{PART_PREFIX}{self.run}-{self.sequence:05d}.parquet"
        table = pa.Table.from_pylist(self.buffer, schema=arrow_schema())
        temporary = self.out / f".{name}.tmp"
        pq.write_table(table, temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, self.out / name)
        self.sequence += 1
        self.buffer = []

    def finish(self) -> None:
        self._write_part()

    def close(self) -> None:
        # The buffer holds whole documents only, so an interrupted run keeps them too.
        self._write_part()


def open_writer(out: Path, model: ModelInfo) -> Writer:
    fmt = output_format(out)
    if fmt == "parquet":
        return ParquetWriter(out, model)
    return TextWriter(out, fmt, model)
