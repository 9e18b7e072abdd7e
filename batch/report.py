"""`stance-watch timeseries`: daily.csv, stance_index.png and a self-contained report.html.

The page has no external resources: the plot is embedded as a data URI and the style
is inline, so it can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
from pathlib import Path

from batch.outputs import OutputError, read_chunks
from batch.timeseries import (
    COUNT_COLUMNS,
    DAILY_COLUMNS,
    READ_COLUMNS,
    WINDOW_DAYS,
    Aggregate,
    actor_rows,
    aggregate,
    daily_rows,
    largest_moves,
)
from pipeline.labels import ACTOR_NAMES, STANCES

DAILY_FILE, PLOT_FILE, REPORT_FILE = "daily.csv", "stance_index.png", "report.html"
COLOURS = {
    "japan": "#c0392b",
    "china": "#d68910",
    "us": "#1f4e9c",
    "taiwan": "#1e8449",
    "other": "#7f7f7f",
}
INDEX_LABEL = "stance index (share supportive \u2212 share hostile)"


def _cell(value) -> str:
    if isinstance(value, float):
        return repr(round(value, 6))
    if isinstance(value, dt.date):
        return value.isoformat()
    return "" if value is None else str(value)


def write_daily(daily: list[dict], path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(DAILY_COLUMNS)
        writer.writerows([_cell(row[c]) for c in DAILY_COLUMNS] for row in daily)


def plot_png(daily: list[dict], agg: Aggregate, title_note: str) -> bytes:
    """The index per actor over time: the 7-day line, each day's own value as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 5.5), dpi=110)
    try:
        for actor in agg.actors():
            days = [r for r in daily if r["actor"] == actor]
            dates = [r["date"] for r in days]
            colour = COLOURS.get(actor, "#333333")
            name = ACTOR_NAMES.get(actor, actor)
            line_dates, line_values = [], []
            for i, row in enumerate(days):
                if i and (row["date"] - days[i - 1]["date"]).days > WINDOW_DAYS:
                    line_dates.append(row["date"])  # no window spans the gap: break the line
                    line_values.append(float("nan"))
                line_dates.append(row["date"])
                line_values.append(row["stance_index_7d"])
            axes.plot(
                line_dates, line_values, color=colour, linewidth=2, marker="o", markersize=3,
                label=f"{name} ({sum(r['rows'] for r in days):,} rows)",
            )  # fmt: skip
            axes.scatter(
                dates, [r["stance_index"] for r in days], color=colour, alpha=0.3, s=18,
                linewidths=0,
            )  # fmt: skip
        axes.axhline(0, color="#444444", linewidth=0.8)
        axes.set_ylim(-1.05, 1.05)
        axes.set_ylabel(INDEX_LABEL)
        axes.set_xlabel("publication date")
        locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        axes.grid(True, alpha=0.3)
        axes.set_title(
            "Stance toward Japan's position, by actor\n"
            f"lines: {WINDOW_DAYS}-day rolling index; dots: single days. {title_note}",
            fontsize=11,
        )
        axes.set_yticks([-1, -0.5, 0, 0.5, 1])
        axes.set_yticklabels(["\u22121 hostile", "\u22120.5", "0", "0.5", "+1 supportive"])
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)


def _table(headers: list[str], rows: list[list], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell_text(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cell_text(value) -> str:
    if isinstance(value, float):
        return f"{value:+.3f}" if value < 0 or value > 0 else "0.000"
    return _cell(value)


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #222; line-height: 1.4; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
h3 { font-size: 1.05rem; margin-bottom: 0.3rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top;
         white-space: nowrap; }
th { background: #f2f2f2; }
td:not(:first-child) { font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #ddd; }
.meta, .note { color: #555; font-size: 0.9rem; }
ol.examples li { margin-bottom: 0.3rem; }
.stance { font-weight: 600; }
"""


def render_html(
    agg: Aggregate, daily: list[dict], moves: list[dict], png: bytes, scored: Path
) -> str:
    actors = actor_rows(agg, daily)
    first = min(r["date"] for r in daily)
    last = max(r["date"] for r in daily)
    models = ", ".join(
        f"{name} version {version or '-'} (MLflow run {run or '-'})"
        for name, version, run in sorted(agg.models, key=lambda m: tuple(str(x) for x in m))
    )
    image = base64.b64encode(png).decode("ascii")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>stance-watch: actor stance by day</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Actor stance toward Japan's position, day by day</h1>",
        f'<p class="meta">Scored file: {html.escape(str(scored))} &middot; '
        f"{agg.rows:,} rows (sentence, actor) from {len(agg.documents):,} documents, "
        f"{first.isoformat()} to {last.isoformat()} &middot; model: {html.escape(models)}</p>",
        '<p class="note">Stance index = share of an actor\'s rows labelled supportive minus '
        f"share labelled hostile (from &minus;1 to 1); {WINDOW_DAYS}-day values pool all rows "
        f"of the {WINDOW_DAYS} calendar days ending that day. Hedging share = share labelled "
        "hedging.</p>",
        f'<img id="stance-index-plot" alt="{html.escape(INDEX_LABEL)} per actor over time" '
        f'src="data:image/png;base64,{image}">',
        "<h2>Per actor</h2>",
        _table(
            [
                "actor",
                "documents",
                "days",
                "first day",
                "last day",
                "rows",
                *STANCES,
                "stance index",
                "hedging share",
                f"latest {WINDOW_DAYS}-day index",
            ],
            [
                [
                    a["actor"],
                    a["documents"],
                    a["days"],
                    a["first_date"],
                    a["last_date"],
                    a["rows"],
                    *(a[c] for c in COUNT_COLUMNS),
                    a["stance_index"],
                    a["hedging_share"],
                    a["latest_stance_index_7d"],
                ]
                for a in actors
            ],
            "actors",
        ),  # fmt: skip
        f"<h2>Largest day-to-day moves of the {WINDOW_DAYS}-day index</h2>",
    ]
    if moves:
        parts.append(
            _table(
                [
                    "day",
                    "actor",
                    "previous day",
                    "index before",
                    "index after",
                    "move",
                    "rows that day",
                    "that day's own index",
                ],
                [
                    [
                        m["date"],
                        m["actor"],
                        m["previous_date"],
                        m["stance_index_7d_before"],
                        m["stance_index_7d"],
                        m["move"],
                        m["rows"],
                        m["stance_index"],
                    ]
                    for m in moves
                ],
                "moves",
            )  # fmt: skip
        )
    else:
        parts.append('<p class="note" id="moves">No actor has rows on two different days.</p>')
    parts.append("<h2>Highest-scoring sentences per actor and stance</h2>")
    for actor in agg.actors():
        parts.append(f'<h3 id="examples-{html.escape(actor)}">{html.escape(actor)}</h3>')
        for stance in STANCES:
            examples = agg.examples(actor, stance)
            if not examples:
                parts.append(f'<p class="note"><span class="stance">{stance}</span>: none</p>')
                continue
            items = "".join(
                f'<li>{html.escape(e.sentence)} <span class="meta">({stance} '
                f"{e.score:.3f}; {html.escape(e.source or 'source unknown')}, "
                f"{e.date.isoformat()}, document {html.escape(e.doc_id)})</span></li>"
                for e in examples
            )
            parts.append(
                f'<p><span class="stance">{stance}</span></p>'
                f'<ol class="examples" data-actor="{html.escape(actor)}" '
                f'data-stance="{stance}">{items}</ol>'
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(scored: Path, out_dir: Path, examples: int = 3, moves: int = 10) -> list[Path]:
    """daily.csv, stance_index.png and report.html for ``scored`` in ``out_dir``."""
    agg = aggregate(read_chunks(Path(scored), READ_COLUMNS), examples)
    if agg.rows == 0:
        raise OutputError(f"{scored}: no scored rows")
    daily = daily_rows(agg)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / DAILY_FILE, out_dir / PLOT_FILE, out_dir / REPORT_FILE]
    write_daily(daily, paths[0])
    note = f"{agg.rows:,} rows, {len(agg.documents):,} documents."
    png = plot_png(daily, agg, note)
    paths[1].write_bytes(png)
    page = render_html(agg, daily, largest_moves(daily, moves), png, Path(scored))
    paths[2].write_text(page, encoding="utf-8")
    return paths
