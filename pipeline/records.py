"""The labelled-data contract: one loader for every labelled JSONL file.

Every problem is reported with its file and line, all of them at once: a line that is
not UTF-8 or not JSON (a truncated last line says so), not an object, a field missing,
unknown or of the wrong type or value, an id used twice, a (sentence, actor) pair
labelled twice. A load fails on any problem unless the caller explicitly allows
skipping, and even then every skipped row is reported.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from pipeline.atomic import open_replacing
from pipeline.labels import ACTORS, STANCES

logger = logging.getLogger(__name__)

Actor = Literal[ACTORS]  # type: ignore[valid-type]
Stance = Literal[STANCES]  # type: ignore[valid-type]
Style = Literal[
    "wire", "statement", "state_media", "editorial", "analysis",
    "explainer", "headline", "list_fragment", "quote",
]  # fmt: skip
Dispute = Literal["takaichi_2025", "trawler_2010", "senkaku_2012", "adiz_2013", "fukushima_2023"]


class LabelledRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    doc: str
    sentence: str
    actor: Actor
    stance: Stance
    style: Style | None = None
    dispute: Dispute | None = None

    @field_validator("id", "doc", "sentence")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty or whitespace")
        return value


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class DataError(ValueError):
    """Labelled data failed validation; ``problems`` lists every offending line."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in labelled data:\n{shown}")


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "row"
        got = "" if item["type"] == "missing" else f" (got {item.get('input')!r})"
        parts.append(f"field '{field}': {item['msg']}{got}")
    return "; ".join(parts)


def parse_lines(path: str, data: bytes) -> tuple[list[tuple[int, LabelledRow]], list[Problem]]:
    """Parse JSONL bytes into (line number, row) pairs plus a problem per bad line."""
    rows, problems = [], []
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        # A file cut off mid-write ends inside its last line, without a newline.
        truncated = number == len(lines) and not data.endswith(b"\n")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            problems.append(
                Problem(path, number, f"not UTF-8 (byte {error.start}: {error.reason})")
            )
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as error:
            message = f"invalid JSON: {error.msg} (column {error.colno})"
            if truncated:
                message += "; the file ends inside this line (truncated?)"
            problems.append(Problem(path, number, message))
            continue
        if not isinstance(obj, dict):
            problems.append(
                Problem(path, number, f"expected a JSON object, got {type(obj).__name__}")
            )
            continue
        try:
            rows.append((number, LabelledRow.model_validate(obj)))
        except ValidationError as error:
            problems.append(Problem(path, number, _describe(error)))
    return rows, problems


def find_conflicts(located: list[tuple[str, int, LabelledRow]]) -> list[Problem]:
    """A problem for every row whose (sentence, actor) pair was labelled before.

    With different stances, the first row is reported too: neither label can be trusted.
    """
    first_seen: dict[tuple[str, str], tuple[str, int, LabelledRow]] = {}
    problems: list[Problem] = []
    reported_first: set[tuple[str, int]] = set()
    for path, line, row in located:
        key = (row.sentence, row.actor)
        if key not in first_seen:
            first_seen[key] = (path, line, row)
            continue
        other_path, other_line, other = first_seen[key]
        pair = f"({row.actor!r}, sentence {row.sentence[:60]!r})"
        if other.stance == row.stance:
            problems.append(Problem(path, line, f"{pair} duplicate of {other_path}:{other_line}"))
            continue
        message = (
            f"{pair} labelled twice with different stances: {row.stance!r} here, "
            f"{other.stance!r} at {other_path}:{other_line}"
        )
        problems.append(Problem(path, line, message))
        if (other_path, other_line) not in reported_first:
            reported_first.add((other_path, other_line))
            problems.append(Problem(other_path, other_line, f"{pair} conflicts with {path}:{line}"))
    return problems


def find_duplicate_ids(located: list[tuple[str, int, LabelledRow]]) -> list[Problem]:
    """A problem for every row whose id an earlier row already has."""
    first_seen: dict[str, tuple[str, int]] = {}
    problems = []
    for path, line, row in located:
        if row.id in first_seen:
            other_path, other_line = first_seen[row.id]
            problems.append(
                Problem(path, line, f"duplicate id {row.id!r} (first at {other_path}:{other_line})")
            )
        else:
            first_seen[row.id] = (path, line)
    return problems


def load_labelled(paths: list[Path] | Path, allow_skipping: bool = False) -> list[LabelledRow]:
    """Load and validate labelled JSONL files as one data set.

    Raises DataError listing every problem, unless ``allow_skipping`` is set; then the
    offending rows are dropped and each one is logged as a warning.
    """
    paths = [paths] if isinstance(paths, Path | str) else list(paths)
    located: list[tuple[str, int, LabelledRow]] = []
    problems: list[Problem] = []
    for path in paths:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as error:
            problems.append(Problem(str(path), 0, f"cannot read: {error.strerror}"))
            continue
        rows, bad = parse_lines(str(path), data)
        problems += bad
        located += [(str(path), line, row) for line, row in rows]
    duplicates = find_duplicate_ids(located)
    conflicts = find_conflicts(located)
    problems += duplicates + conflicts
    if problems and not allow_skipping:
        raise DataError(problems)
    for problem in problems:
        logger.warning("skipped: %s", problem)
    # The first row with an id is kept; of a conflicting pair, neither.
    dropped = {(p.path, p.line) for p in duplicates + conflicts}
    return [row for path, line, row in located if (path, line) not in dropped]


# The real-news dev set: outside the repository, for model choice and error analysis
# (scripts/dev_eval.py, scripts/dev_overlap.py), never for training. Its rows carry extra
# fields (source, date, note); only these are read.
DEFAULT_DEV = Path("../shared/realnews-dev.jsonl")
DEV_FIELDS = ("id", "doc", "sentence", "actor", "stance")


def read_dev(path: Path) -> list[LabelledRow]:
    """The labelled rows of the dev file (only DEV_FIELDS of each); DataError naming
    the file and line of every bad row."""
    lines = []
    for raw in path.read_bytes().split(b"\n"):
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            lines.append(raw)  # parse_lines reports it with its line number
            continue
        if isinstance(obj, dict):
            raw = json.dumps({k: obj[k] for k in DEV_FIELDS if k in obj}).encode()
        lines.append(raw)
    rows, problems = parse_lines(str(path), b"\n".join(lines))
    if problems:
        raise DataError(problems)
    if not rows:
        raise ValueError(f"{path}: no labelled rows")
    return [row for _, row in rows]


def write_jsonl(path: Path, rows: list[LabelledRow]) -> None:
    with open_replacing(path) as handle:
        for row in rows:
            handle.write(json.dumps(row.model_dump(exclude_none=True), ensure_ascii=False) + "\n")
