"""Registered model versions side by side: lineage, parameters that differ, every metric.

Default: the `champion` against the newest other version (the latest challenger); with
no champion, the two newest versions. ``--versions 3 5`` compares those (two or more;
differences are against the first). Prints Markdown tables to stdout.

Usage: python scripts/compare_versions.py [--versions N N ...] [--model NAME]
The registry is the one the pipeline uses (pipeline.tracking: ./mlflow.db unless
MLFLOW_TRACKING_URI is set); the model name defaults to params.yaml mlflow.registered_model.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline import tracking
from pipeline.config import load_section
from pipeline.lineage import short

# Lineage rows: (label, version tag, fallback: run param "p:..." or run tag "t:...").
LINEAGE = (
    ("DVC experiment", tracking.EXP_TAG, f"t:{tracking.EXP_TAG}"),
    ("git commit", tracking.GIT_COMMIT_TAG, f"t:{tracking.GIT_COMMIT_TAG}"),
    ("corpus md5", "corpus_md5", "p:corpus_md5"),
    ("train data md5", "train_data_md5", "p:train_data_md5"),
    ("base model", "base_model", "p:train.base_model"),
    ("backend", "backend", None),
    ("precision", "precision", None),
    ("model size (MB)", "model_size_mb", None),
)
HASHES = {"git commit", "corpus md5", "train data md5"}  # shown as 8 hex digits
# Metric groups, in this order; the rest after them, alphabetically.
METRIC_ORDER = ("seed_", "validation_", "behaviour_", "dev_")
MISSING = "—"


class CompareError(RuntimeError):
    """Nothing to compare, or a requested version does not exist."""


@dataclass(frozen=True)
class Version:
    """One registry version with what its run logged (plain values, for the tables)."""

    number: int
    aliases: tuple[str, ...]
    run_id: str
    run_name: str
    created: str  # UTC, minutes
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    run_tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    description: str = ""


def pick(
    numbers: list[int], champion: int | None, requested: list[int] | None, name: str
) -> list[int]:
    """The versions to compare: ``requested``, or the champion and the newest other
    version, or (no champion) the two newest. CompareError when that is not possible."""
    if requested:
        unknown = [n for n in requested if n not in numbers]
        if unknown:
            raise CompareError(
                f"{name} has no version(s) {unknown}; registered: {sorted(numbers) or 'none'}"
            )
        if len(set(requested)) < 2:
            raise CompareError("give two or more different versions, e.g. --versions 3 5")
        return list(dict.fromkeys(requested))
    if not numbers:
        raise CompareError(f"no registered versions of {name}: run `dvc repro` first")
    if len(numbers) == 1:
        raise CompareError(
            f"{name} has only one registered version (v{numbers[0]}): nothing to compare "
            "yet. Train another, e.g. `dvc exp run -S train.learning_rate=5e-5`, then run "
            "`make compare` again."
        )
    newest_first = sorted(numbers, reverse=True)
    if champion is None:
        return sorted(newest_first[:2])
    challenger = next(n for n in newest_first if n != champion)
    return [champion, challenger]


def lineage_value(version: Version, tag: str, fallback: str | None) -> str:
    """A version tag, else the run param / run tag it is copied from (older versions)."""
    if version.tags.get(tag):
        return version.tags[tag]
    if fallback:
        kind, key = fallback.split(":", 1)
        value = (version.params if kind == "p" else version.run_tags).get(key)
        if value:
            return value
    return MISSING


def header(versions: list[Version]) -> list[str]:
    return [f"v{v.number}" for v in versions]


def overview_rows(versions: list[Version]) -> list[list[str]]:
    rows = [
        ["alias", *(", ".join(v.aliases) or MISSING for v in versions)],
        ["registered (UTC)", *(v.created for v in versions)],
        ["run", *(f"{v.run_name} {v.run_id[:8]}" for v in versions)],
    ]
    for label, tag, fallback in LINEAGE:
        values = [lineage_value(v, tag, fallback) for v in versions]
        if label in HASHES:
            values = [short(value) if value != MISSING else value for value in values]
        rows.append([label, *values])
    return rows


def param_rows(versions: list[Version]) -> tuple[list[list[str]], int]:
    """Rows of the parameters whose values differ (a missing one differs), and how many
    are the same in every version."""
    keys = sorted(set().union(*(v.params for v in versions)))
    rows, same = [], 0
    for key in keys:
        values = [v.params.get(key, MISSING) for v in versions]
        if len(set(values)) == 1:
            same += 1
        else:
            rows.append([key, *values])
    return rows, same


def metric_key(name: str) -> tuple[int, str]:
    for rank, prefix in enumerate(METRIC_ORDER):
        if name.startswith(prefix):
            return rank, name
    return len(METRIC_ORDER), name


def figure(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:.4f}"


def difference(value: float | None, reference: float | None) -> str:
    if value is None or reference is None:
        return MISSING
    return f"{value - reference:+.4f}"


def metric_rows(versions: list[Version]) -> list[list[str]]:
    """Every metric any version has: its value per version and each later version's
    difference from the first."""
    first = versions[0]
    rows = []
    for key in sorted(set().union(*(v.metrics for v in versions)), key=metric_key):
        values = [v.metrics.get(key) for v in versions]
        rows.append(
            [
                key,
                *(figure(value) for value in values),
                *(difference(value, first.metrics.get(key)) for value in values[1:]),
            ]
        )
    return rows


def table(columns: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; numbers (and differences) right-aligned."""

    def numeric(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return False
        return True

    align = [
        "---:" if rows and all(numeric(r[i]) or r[i] == MISSING for r in rows) else "---"
        for i in range(len(columns))
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render(name: str, versions: list[Version]) -> str:
    names = header(versions)
    first = names[0]
    parts = [f"## {name}: " + " vs ".join(names), ""]
    described = [f"- v{v.number}: {v.description}" for v in versions if v.description]
    if described:
        parts += [*described, ""]
    parts += [table(["", *names], overview_rows(versions)), ""]
    rows, same = param_rows(versions)
    parts.append(f"### Parameters that differ ({len(rows)}; {same} identical)")
    parts.append("")
    parts.append(table(["parameter", *names], rows) if rows else "(none)")
    parts += ["", f"### Metrics (Δ = version − {first})", ""]
    deltas = [f"Δ {n}" for n in names[1:]]
    parts.append(table(["metric", *names, *deltas], metric_rows(versions)))
    return "\n".join(parts) + "\n"


def load_versions(client, name: str, numbers: list[int]) -> list[Version]:
    versions = []
    for number in numbers:
        mv = client.get_model_version(name, str(number))
        run = client.get_run(mv.run_id)
        created = datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC)
        versions.append(
            Version(
                number=number,
                aliases=tuple(mv.aliases),
                run_id=mv.run_id,
                run_name=run.info.run_name or "",
                created=created.strftime("%Y-%m-%d %H:%M"),
                tags=dict(mv.tags),
                params=dict(run.data.params),
                run_tags={k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
                metrics=dict(run.data.metrics),
                description=mv.description or "",
            )
        )
    return versions


def compare(name: str, requested: list[int] | None = None) -> str:
    """The comparison of ``name``'s versions in the tracking store, as Markdown."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking.tracking_uri())
    try:
        found = client.search_model_versions(f"name = '{name}'")
    except MlflowException as error:
        raise CompareError(
            f"cannot read the registry at {tracking.tracking_uri()}: {error}"
        ) from None
    numbers = [int(v.version) for v in found]
    champion = None
    if numbers:
        aliases = client.get_registered_model(name).aliases  # {alias: version}
        champion = int(aliases[tracking.CHAMPION]) if tracking.CHAMPION in aliases else None
    return render(name, load_versions(client, name, pick(numbers, champion, requested, name)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--versions", type=int, nargs="+", help="registry versions (default: champion vs newest)"
    )
    parser.add_argument("--model", help="registered model (default: mlflow.registered_model)")
    args = parser.parse_args(argv)
    name = args.model or load_section("mlflow", tracking.MlflowParams).registered_model
    try:
        print(compare(name, args.versions), end="")
    except CompareError as error:
        print(f"compare: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
