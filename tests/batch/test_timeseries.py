"""`stance-watch timeseries` on a small hand-made scored file, against hand-computed values."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import functools
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from batch.cli import main
from batch.outputs import COLUMNS, encode_rows
from pipeline.labels import STANCES

D = dt.date


def row(doc, day, actor, stance, top, sentence, source="Wire", index=0):
    """A scored row whose predicted ``stance`` has score ``top``; the rest share 1 - top."""
    scores = {s: (top if s == stance else (1 - top) / 3) for s in STANCES}
    return {
        "doc_id": doc, "date": D(2025, 11, day), "source": source, "sentence_index": index,
        "start": 0, "end": len(sentence), "sentence": sentence, "actor": actor,
        "stance": stance, **{f"score_{s}": v for s, v in scores.items()}, "truncated": False,
        "model_name": "stance-classifier", "model_version": "3", "mlflow_run_id": "run-abc",
    }  # fmt: skip


# japan: 1 Nov S S H G | 3 Nov H N | 9 Nov S S | 10 Nov H    (S supportive, H hostile,
# china: 1 Nov H H     | 2 Nov H S                             G hedging, N neutral)
ROWS = [
    row("d1", 1, "japan", "supportive", 0.9, "Tokyo stood by the remarks.", index=0),
    row("d1", 1, "japan", "supportive", 0.7, "Japan repeated its view.", index=1),
    row("d1", 1, "japan", "hostile", 0.6, "Japan was said to regret the row.", index=2),
    row("d1", 1, "china", "hostile", 0.9, "Beijing demanded a retraction.", index=3),
    row("d2", 1, "japan", "hedging", 0.5, "Tokyo declined to comment.", "Post"),
    row("d2", 1, "china", "hostile", 0.6, "China warned of consequences.", "Post"),
    row("d3", 2, "china", "hostile", 0.8, "Beijing summoned the envoy."),
    row("d3", 2, "china", "supportive", 0.4, "China welcomed the talks.", index=1),
    row("d4", 3, "japan", "hostile", 0.7, "Tokyo's critics were loud.", "Post"),
    row("d4", 3, "japan", "neutral", 0.95, "Japan held a cabinet meeting.", "Post", 1),
    row("d5", 9, "japan", "supportive", 0.8, "Tokyo thanked its allies."),
    # The same sentence again, lower: the report lists each sentence once.
    row("d6", 9, "japan", "supportive", 0.75, "Tokyo thanked its allies.", "Post"),
    row("d7", 10, "japan", "hostile", 0.65, "Japan's move was criticised."),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("timeseries")
    scored = root / "scored.jsonl"
    scored.write_bytes(encode_rows(ROWS, "jsonl"))
    assert main(["timeseries", str(scored), "--out", str(root / "report"), "--moves", "3"]) == 0
    return root / "report"


def daily(report: Path) -> dict[tuple[str, str], dict]:
    with open(report / "daily.csv", encoding="utf-8") as handle:
        return {(r["date"], r["actor"]): r for r in csv.DictReader(handle)}


def test_daily_counts_means_index_and_hedging(report: Path) -> None:
    table = daily(report)
    assert list(table) == [
        ("2025-11-01", "japan"), ("2025-11-03", "japan"), ("2025-11-09", "japan"),
        ("2025-11-10", "japan"), ("2025-11-01", "china"), ("2025-11-02", "china"),
    ]  # fmt: skip
    japan_1 = table[("2025-11-01", "japan")]
    assert [int(japan_1[k]) for k in ("rows", "n_supportive", "n_hostile", "n_hedging",
                                      "n_neutral")] == [4, 2, 1, 1, 0]  # fmt: skip
    # supportive scores 0.9, 0.7, (1-0.6)/3, (1-0.5)/3
    assert float(japan_1["mean_score_supportive"]) == pytest.approx(
        (0.9 + 0.7 + 0.4 / 3 + 0.5 / 3) / 4, abs=1e-6
    )
    assert float(japan_1["stance_index"]) == pytest.approx((2 - 1) / 4)
    assert float(japan_1["hedging_share"]) == pytest.approx(1 / 4)
    assert float(table[("2025-11-03", "japan")]["stance_index"]) == pytest.approx((0 - 1) / 2)
    assert float(table[("2025-11-02", "china")]["stance_index"]) == pytest.approx(0.0)
    assert float(table[("2025-11-01", "china")]["stance_index"]) == pytest.approx(-1.0)


def test_seven_day_values_pool_the_rows_of_the_window(report: Path) -> None:
    table = daily(report)  # daily.csv keeps 6 decimals
    approx = functools.partial(pytest.approx, abs=1e-6)

    def seven(day: str, actor: str) -> tuple[int, float, float]:
        r = table[(day, actor)]
        return int(r["rows_7d"]), float(r["stance_index_7d"]), float(r["hedging_share_7d"])

    # 3 Nov: window 28 Oct-3 Nov = 1 Nov (S S H G) + 3 Nov (H N): (2 - 2) / 6, 1 hedging.
    assert seven("2025-11-03", "japan") == (6, approx(0.0), approx(1 / 6))
    # 9 Nov: window 3-9 Nov (1 Nov has left it) = H N + S S: (2 - 1) / 4.
    assert seven("2025-11-09", "japan") == (4, approx(0.25), approx(0.0))
    # 10 Nov: window 4-10 Nov = 9 Nov (S S) + 10 Nov (H): (2 - 1) / 3.
    assert seven("2025-11-10", "japan") == (3, approx(1 / 3), approx(0.0))
    # china 2 Nov: 1-2 Nov = H H H S: (1 - 3) / 4.
    assert seven("2025-11-02", "china") == (4, approx(-0.5), approx(0.0))


class Page(HTMLParser):
    """Tables (id -> rows of cell text), images, example lists and every link target."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[dict] = []
        self.examples: dict[tuple[str, str], list[str]] = {}
        self.targets: list[str] = []
        self._table = self._list = None
        self._cell: list[str] | None = None
        self._item: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.targets += [attrs[k] for k in ("src", "href") if k in attrs]
        if tag == "table":
            self._table = attrs.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "ol":
            self._list = (attrs["data-actor"], attrs["data-stance"])
            self.examples[self._list] = []
        elif tag == "li" and self._list:
            self._item = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "li" and self._item is not None:
            self.examples[self._list].append("".join(self._item).strip())
            self._item = None
        elif tag == "ol":
            self._list = None

    def handle_data(self, data):
        for part in (self._cell, self._item):
            if part is not None:
                part.append(data)


@pytest.fixture(scope="module")
def page(report: Path) -> Page:
    parsed = Page()
    parsed.feed((report / "report.html").read_text(encoding="utf-8"))
    return parsed


def test_report_embeds_the_plot_and_needs_nothing_else(report: Path, page: Page) -> None:
    png = (report / "stance_index.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    (image,) = page.images
    prefix = "data:image/png;base64,"
    assert image["src"].startswith(prefix)
    assert base64.b64decode(image["src"][len(prefix) :]) == png
    assert [t for t in page.targets if not t.startswith("data:")] == []  # self-contained


def test_report_actor_table(page: Page) -> None:
    header, *rows = page.tables["actors"]
    assert header[:6] == ["actor", "documents", "days", "first day", "last day", "rows"]
    japan, china = (dict(zip(header, r, strict=True)) for r in rows)
    assert (japan["actor"], japan["documents"], japan["days"], japan["rows"]) == (
        "japan", "6", "4", "9",
    )  # fmt: skip
    assert [japan[s] for s in STANCES] == ["4", "3", "1", "1"]
    assert japan["stance index"] == "+0.111"  # (4 - 3) / 9
    assert china["stance index"] == "-0.500"  # (1 - 3) / 4
    assert japan["latest 7-day index"] == "+0.333"


def test_report_largest_moves(page: Page) -> None:
    header, *rows = page.tables["moves"]
    assert header[:3] == ["day", "actor", "previous day"]
    # china 2 Nov: -1 -> -0.5 (+0.5); japan 9 Nov: 0 -> 0.25; japan 3 Nov: 0.25 -> 0 (both
    # 0.25: the earlier day first); japan 10 Nov (+0.083) is fourth and left out.
    assert [(r[0], r[1], r[5]) for r in rows] == [
        ("2025-11-02", "china", "+0.500"),
        ("2025-11-03", "japan", "-0.250"),
        ("2025-11-09", "japan", "+0.250"),
    ]


def test_report_examples_highest_score_first_with_source(page: Page) -> None:
    supportive = page.examples[("japan", "supportive")]
    assert [e.split(" (")[0] for e in supportive] == [
        "Tokyo stood by the remarks.", "Tokyo thanked its allies.", "Japan repeated its view.",
    ]  # fmt: skip
    assert "supportive 0.900; Wire, 2025-11-01, document d1" in supportive[0]
    assert page.examples[("china", "hostile")][0].startswith("Beijing demanded a retraction.")
    assert ("china", "hedging") not in page.examples  # none: stated, not an empty list


def test_scored_parquet_and_csv_give_the_same_series(tmp_path: Path, report: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from batch.outputs import arrow_schema

    folder = tmp_path / "scored.parquet"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(ROWS, schema=arrow_schema()), folder / "part-0.parquet")
    (tmp_path / "scored.csv").write_bytes(encode_rows(ROWS, "csv", header=True))
    for name in ("scored.parquet", "scored.csv"):
        out = tmp_path / name.replace(".", "_")
        assert main(["timeseries", str(tmp_path / name), "--out", str(out), "--moves", "3"]) == 0
        assert (out / "daily.csv").read_text() == (report / "daily.csv").read_text()


def test_scored_rows_round_trip_through_jsonl(tmp_path: Path) -> None:
    from batch.outputs import read_frame

    path = tmp_path / "scored.jsonl"
    path.write_bytes(encode_rows(ROWS, "jsonl"))
    assert read_frame(path).to_dict("records") == [{c: r[c] for c in COLUMNS} for r in ROWS]
    assert json.loads(path.read_text().splitlines()[0])["date"] == "2025-11-01"
