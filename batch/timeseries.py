"""A scored file as a daily actor-stance series: counts, mean scores, stance index, hedging.

Definitions (per day and actor, over the rows scored for that actor on that day):

- ``stance_index`` = share of rows labelled supportive minus share labelled hostile,
  i.e. the mean over rows of +1 (supportive), -1 (hostile) or 0; from -1 to 1.
- ``hedging_share`` = share of rows labelled hedging.
- ``*_7d``: the same over all the actor's rows of the 7 calendar days ending that day
  (row-weighted: a day with many rows counts for more than a day with one).
- a day's ``move`` = its ``stance_index_7d`` minus that of the actor's previous day
  with rows.

The scored file is read in chunks: memory holds one chunk, the per-day sums, and a few
example sentences per actor and stance.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from batch.outputs import MODEL_COLUMNS
from pipeline.labels import ACTORS, STANCES

WINDOW_DAYS = 7
COUNT_COLUMNS = tuple(f"n_{stance}" for stance in STANCES)
MEAN_COLUMNS = tuple(f"mean_score_{stance}" for stance in STANCES)
DAILY_COLUMNS = (
    "date", "actor", "rows", *COUNT_COLUMNS, *MEAN_COLUMNS, "stance_index", "hedging_share",
    "rows_7d", "stance_index_7d", "hedging_share_7d",
)  # fmt: skip
READ_COLUMNS = (
    "doc_id", "date", "source", "sentence", "actor", "stance",
    *(f"score_{stance}" for stance in STANCES), *MODEL_COLUMNS,
)  # fmt: skip


@dataclass
class Cell:
    """Sums for one (day, actor)."""

    rows: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STANCES, 0))
    score_sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STANCES, 0.0))


@dataclass(frozen=True)
class Example:
    score: float
    sentence: str
    doc_id: str
    date: dt.date
    source: str | None


@dataclass
class Aggregate:
    """Everything the series and the report need, accumulated row by row."""

    examples_per_stance: int = 3
    cells: dict[tuple[dt.date, str], Cell] = field(default_factory=dict)
    documents: set[str] = field(default_factory=set)
    actor_documents: dict[str, set[str]] = field(default_factory=dict)
    models: set[tuple] = field(default_factory=set)
    rows: int = 0
    _heaps: dict[tuple[str, str], list] = field(default_factory=dict)

    def add(self, row: dict) -> None:
        actor, stance, date = row["actor"], row["stance"], row["date"]
        if stance not in STANCES:
            raise ValueError(f"row {self.rows + 1}: unknown stance {stance!r}")
        cell = self.cells.setdefault((date, actor), Cell())
        cell.rows += 1
        cell.counts[stance] += 1
        for label in STANCES:
            cell.score_sums[label] += row[f"score_{label}"]
        self.documents.add(row["doc_id"])
        self.actor_documents.setdefault(actor, set()).add(row["doc_id"])
        self.models.add(tuple(row[c] for c in MODEL_COLUMNS))
        self.rows += 1
        # Top examples of the predicted stance by its score; earlier rows win ties.
        # Kept four deep so that repeated sentences can be dropped and still fill the list.
        heap = self._heaps.setdefault((actor, stance), [])
        example = Example(
            row[f"score_{stance}"], row["sentence"], row["doc_id"], date, row["source"]
        )
        item = (example.score, -self.rows, example)
        limit = 4 * self.examples_per_stance
        if len(heap) < limit:
            heapq.heappush(heap, item)
        elif item[:2] > heap[0][:2]:
            heapq.heapreplace(heap, item)

    def examples(self, actor: str, stance: str) -> list[Example]:
        """The highest-scoring distinct sentences of ``actor`` labelled ``stance``."""
        ranked = sorted(self._heaps.get((actor, stance), []), key=lambda i: i[:2], reverse=True)
        chosen, seen = [], set()
        for _, _, example in ranked:
            if example.sentence not in seen:
                seen.add(example.sentence)
                chosen.append(example)
        return chosen[: self.examples_per_stance]

    def actors(self) -> list[str]:
        present = {actor for _, actor in self.cells}
        return [a for a in ACTORS if a in present] + sorted(present - set(ACTORS))


def aggregate(chunks: Iterable[list[dict]], examples_per_stance: int = 3) -> Aggregate:
    result = Aggregate(examples_per_stance)
    for chunk in chunks:
        for row in chunk:
            result.add(row)
    return result


def _index(supportive: int, hostile: int, rows: int) -> float:
    return (supportive - hostile) / rows


def daily_rows(agg: Aggregate) -> list[dict]:
    """One dict per (day, actor) with rows, in actor then date order (``DAILY_COLUMNS``)."""
    out = []
    for actor in agg.actors():
        days = sorted(date for date, a in agg.cells if a == actor)
        cells = [agg.cells[(day, actor)] for day in days]
        first = 0  # the window's oldest day
        for i, (day, cell) in enumerate(zip(days, cells, strict=True)):
            while days[first] <= day - dt.timedelta(days=WINDOW_DAYS):
                first += 1
            window = cells[first : i + 1]
            rows_7d = sum(c.rows for c in window)
            supportive_7d = sum(c.counts["supportive"] for c in window)
            hostile_7d = sum(c.counts["hostile"] for c in window)
            hedging_7d = sum(c.counts["hedging"] for c in window)
            out.append(
                {
                    "date": day,
                    "actor": actor,
                    "rows": cell.rows,
                    **{f"n_{s}": cell.counts[s] for s in STANCES},
                    **{f"mean_score_{s}": cell.score_sums[s] / cell.rows for s in STANCES},
                    "stance_index": _index(
                        cell.counts["supportive"], cell.counts["hostile"], cell.rows
                    ),
                    "hedging_share": cell.counts["hedging"] / cell.rows,
                    "rows_7d": rows_7d,
                    "stance_index_7d": _index(supportive_7d, hostile_7d, rows_7d),
                    "hedging_share_7d": hedging_7d / rows_7d,
                }
            )
    return out


def largest_moves(daily: list[dict], count: int) -> list[dict]:
    """The ``count`` (day, actor) pairs whose 7-day index moved most from the actor's
    previous day with rows; largest absolute move first (ties: earlier day, actor order)."""
    moves = []
    previous: dict[str, dict] = {}
    for row in daily:  # actor then date order
        before = previous.get(row["actor"])
        if before is not None:
            moves.append(
                {
                    "date": row["date"],
                    "actor": row["actor"],
                    "previous_date": before["date"],
                    "stance_index_7d_before": before["stance_index_7d"],
                    "stance_index_7d": row["stance_index_7d"],
                    "move": row["stance_index_7d"] - before["stance_index_7d"],
                    "rows": row["rows"],
                    "stance_index": row["stance_index"],
                }
            )
        previous[row["actor"]] = row
    order = {actor: i for i, actor in enumerate(ACTORS)}
    moves.sort(key=lambda m: (-abs(m["move"]), m["date"], order.get(m["actor"], len(order))))
    return moves[:count]


def actor_rows(agg: Aggregate, daily: list[dict]) -> list[dict]:
    """One summary per actor over the whole file."""
    out = []
    for actor in agg.actors():
        cells = [cell for (_, a), cell in agg.cells.items() if a == actor]
        rows = sum(c.rows for c in cells)
        counts = {s: sum(c.counts[s] for c in cells) for s in STANCES}
        days = [r for r in daily if r["actor"] == actor]
        out.append(
            {
                "actor": actor,
                "documents": len(agg.actor_documents[actor]),
                "days": len(days),
                "first_date": days[0]["date"],
                "last_date": days[-1]["date"],
                "rows": rows,
                **{f"n_{s}": counts[s] for s in STANCES},
                "stance_index": _index(counts["supportive"], counts["hostile"], rows),
                "hedging_share": counts["hedging"] / rows,
                "latest_stance_index_7d": days[-1]["stance_index_7d"],
            }
        )
    return out
