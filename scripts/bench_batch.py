"""Batch scoring benchmark (`make bench-batch`): the CLI and Spark on 10k and 100k sentences.

Generates its own corpus of invented news sentences (templated; not the seeds, not the
dev set), dated articles of about 20 sentences, one sentence a line, and runs
`stance-watch score` on it as a subprocess: once per size and engine. For each run it
prints wall time (model loading and Spark start-up included), sentences/s, the rows
written, and the peak memory of the whole process tree (the CLI; or the driver, the JVM
and the Python workers for Spark), sampled every 0.2 s; then the growth from the
smallest to the largest size. Figures only: nothing is asserted.

    python scripts/bench_batch.py                         # champion, 10k and 100k
    python scripts/bench_batch.py --sizes 1000 --model models/stance
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

SENTENCES_PER_ARTICLE = 20
SUBJECTS = [
    "Tokyo", "Japan's foreign ministry", "The Japanese cabinet", "Beijing",
    "China's commerce ministry", "Chinese state media", "Washington", "The State Department",
    "A US envoy", "Taipei", "Taiwan's premier", "Seoul", "An EU spokesperson",
    "Opposition lawmakers in Tokyo", "A Chinese embassy statement",
]  # fmt: skip
VERBS = [
    "said", "insisted", "warned", "argued", "suggested", "told reporters", "repeated",
    "signalled", "denied", "confirmed",
]  # fmt: skip
CLAIMS = [
    "that the remarks on a Taiwan contingency stood",
    "that talks with China would continue at working level",
    "that the seafood ban would stay until Japan changed course",
    "that Washington's commitment to the alliance was unchanged",
    "that the summons of the ambassador was unjustified",
    "that both sides should lower tensions",
    "that tour groups to Japan would be suspended for now",
    "that Taiwan would not comment on a hypothetical scenario",
    "that coast guard patrols near the islands were routine",
    "that the prime minister had described a hypothetical situation",
    "that the export controls were a response to Japan's choices",
    "that the trilateral summit could be postponed",
]  # fmt: skip
TAILS = [
    "", " on Tuesday", " after a cabinet meeting", " in a written statement",
    " during a regular briefing", " as the dispute entered its third week",
    " while shipping companies reviewed their winter schedules",
]  # fmt: skip
FILLERS = [
    "Markets in the region closed slightly lower.",
    "The ferry timetable for the winter season was published.",
    "Officials did not give further details.",
]


def sentence(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return rng.choice(FILLERS)
    text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(CLAIMS)}{rng.choice(TAILS)}"
    return text + "."


def write_corpus(path: Path, sentences: int, seed: int = 7) -> int:
    """JSONL articles totalling ``sentences`` distinct-within-article lines; the article count."""
    rng = random.Random(seed)
    start = dt.date(2025, 11, 1)
    articles = 0
    with open(path, "w", encoding="utf-8") as handle:
        left = sentences
        while left > 0:
            size = min(left, SENTENCES_PER_ARTICLE)
            lines: list[str] = []
            while len(lines) < size:
                candidate = sentence(rng)
                if candidate not in lines:  # the segmenter keeps a repeated sentence once
                    lines.append(candidate)
            record = {
                "id": f"bench-{articles:06d}",
                "date": (start + dt.timedelta(days=articles % 60)).isoformat(),
                "source": f"Bench Wire {articles % 5}",
                "text": "\n".join(lines),
            }
            handle.write(json.dumps(record) + "\n")
            articles += 1
            left -= size
    return articles


def run_measured(command: list[str], log: Path) -> tuple[float, float, int]:
    """(wall seconds, peak MiB of the process tree, exit code)."""
    peak = 0
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        root = psutil.Process(process.pid)
        while process.poll() is None:
            total = 0
            with contextlib.suppress(psutil.Error):  # processes come and go while sampled
                for member in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += member.memory_info().rss
            peak = max(peak, total)
            time.sleep(0.2)
    return time.monotonic() - started, peak / 2**20, process.returncode


SUMMARY = re.compile(r"scored ([\d,]+) document\(s\), ([\d,]+) sentence\(s\), ([\d,]+) row\(s\)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--engines", nargs="+", choices=("cli", "spark"), default=["cli", "spark"])
    parser.add_argument("--model", help="passed to stance-watch score (default: champion)")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--workdir", type=Path, help="keep inputs and outputs here")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-batch-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes:
        corpus = workdir / f"corpus_{size}.jsonl"
        articles = write_corpus(corpus, size)
        for engine in args.engines:
            out = workdir / f"scored_{engine}_{size}.{'parquet' if engine == 'spark' else 'jsonl'}"
            command = [sys.executable, "-m", "batch.cli", "score", str(corpus), "--out", str(out)]
            if args.model:
                command += ["--model", args.model]
            if engine == "spark":
                command += ["--engine", "spark", "--spark-master", args.spark_master]
            log = workdir / f"log_{engine}_{size}.txt"
            print(f"running {engine} on {size:,} sentences ({articles:,} articles) ...",
                  file=sys.stderr, flush=True)  # fmt: skip
            seconds, peak, code = run_measured(command, log)
            if code != 0:
                sys.exit(f"{engine} {size} failed with exit code {code}; see {log}")
            found = SUMMARY.findall(log.read_text(encoding="utf-8"))
            documents, sentences, rows = (int(x.replace(",", "")) for x in found[-1])
            results.append(
                {"engine": engine, "size": size, "articles": documents, "sentences": sentences,
                 "rows": rows, "seconds": seconds, "peak_mib": peak}
            )  # fmt: skip

    print(f"\nbatch scoring benchmark ({psutil.cpu_count()} cores; Spark {args.spark_master}; "
          f"wall time includes start-up and model loading)\n")  # fmt: skip
    print("| engine | sentences | (sentence, actor) rows | wall time | sentences/s | peak memory |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['engine']} | {r['sentences']:,} | {r['rows']:,} | {r['seconds']:.1f} s | "
            f"{r['sentences'] / r['seconds']:,.1f} | {r['peak_mib']:,.0f} MiB |"
        )
    if len(args.sizes) > 1:
        small, large = min(args.sizes), max(args.sizes)
        print(f"\ngrowth from {small:,} to {large:,} sentences ({large / small:.0f}x the input):")
        for engine in args.engines:
            a = next(r for r in results if r["engine"] == engine and r["size"] == small)
            b = next(r for r in results if r["engine"] == engine and r["size"] == large)
            print(
                f"- {engine}: time x{b['seconds'] / a['seconds']:.2f}, "
                f"peak memory {a['peak_mib']:,.0f} -> {b['peak_mib']:,.0f} MiB "
                f"(x{b['peak_mib'] / a['peak_mib']:.2f})"
            )
    print(f"\ninputs, outputs and logs: {workdir}")


if __name__ == "__main__":
    main()
