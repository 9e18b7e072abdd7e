"""Serving benchmark, in one run on this machine: prints figures (it is not a test).

  1. the naive loop: transformers, fp32, one sentence at a time, on the fine-tuned model;
  2. the predictor alone (pipeline.inference): torch fp32 and ONNX int8, batch 32;
  3. the running service end to end: 4 clients x 32 sentences per request, and
     1 / 4 / 16 clients x one sentence per request (p50 / p95 / p99 per request);
  4. cost growth through the served predictor: sentences of 16 / 32 / 64 / 128 tokens,
     and 1k / 10k / 100k sentences (time and peak memory, each size in a fresh process).

Every end-to-end figure is also given as a ratio to the naive loop of the same run.
With ``--rounds N`` (default 3) the naive loop and the service arms run N times,
interleaved (naive, then every service arm, then again), and a second table gives each
arm's median and range over the rounds, its ratio taken against the naive loop of its
own round: on 2 shared cores one run's figures move by 15-20% from run to run.
The sentences are invented here (news-like, about 36 tokens per (actor, sentence) pair
on average, varied lengths); no corpus or seed text is read.

Usage (repository root, after `dvc repro`): make bench
  or: python scripts/bench_serving.py [--url http://127.0.0.1:3000] [--quick] [--rounds N]
Without --url the script starts `bentoml serve` on a free port (the store's model, as
`make serve` would serve it) and stops it at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import yaml

from serving import launch

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED = 7
MEAN_PAIR_TOKENS = 36
ROWS = 6400  # the invented rows every figure draws from (a prefix of them)
READY_TIMEOUT_S = 180

# Invented news phrasing: institutions, not people, say things here.
SUBJECTS = {
    "japan": ["Japan's foreign ministry", "Tokyo", "the Japanese government",
              "Japan's defence ministry", "officials in Tokyo", "a Japanese spokesperson"],
    "china": ["China's foreign ministry", "Beijing", "the Chinese embassy", "Chinese state media",
              "China's commerce ministry", "officials in Beijing"],
    "us": ["the US State Department", "Washington", "the White House", "the Pentagon",
           "the US embassy in Tokyo", "American officials"],
    "taiwan": ["Taiwan's presidential office", "Taipei", "Taiwan's foreign ministry",
               "Taiwan's defence ministry"],
    "other": ["South Korea's foreign ministry", "an EU spokesperson", "Australia's government",
              "a regional security analyst"],
}  # fmt: skip
VERBS = ["said", "warned", "stated", "told reporters", "insisted", "argued", "noted",
         "repeated", "suggested", "declared", "added", "wrote in a statement"]  # fmt: skip
CLAUSES = [
    "that the remarks on a Taiwan contingency had been taken out of context",
    "that it would not retract the comments made in parliament",
    "that the dispute should be settled through dialogue",
    "that seafood imports would stay suspended until further notice",
    "that the alliance remained the cornerstone of regional stability",
    "that coast guard ships had again entered the contiguous zone",
    "that travel advisories for students would be reviewed next week",
    "that both sides should avoid steps that raise tensions",
    "that the government was monitoring the situation closely",
    "that the summit planned for the winter could be postponed",
    "that it had lodged a formal protest through diplomatic channels",
    "that any change to the status quo by force was unacceptable",
    "that economic pressure would not change its position",
    "that the envoy had been summoned for the second time this month",
    "that exchanges between lawmakers would continue as planned",
]  # fmt: skip
CONNECTORS = ["and", "while adding", "even as officials said", "after reports", "although",
              "because", "as analysts noted"]  # fmt: skip


# --------------------------------------------------------------------------- sentences


def pair_length(tokenizer, sentence: str, actor: str) -> int:
    from pipeline.formatting import model_input

    first, second = model_input(sentence, actor)
    return len(tokenizer(first, second, truncation=False)["input_ids"])


def compose(rng: random.Random, actor: str, clauses: int) -> str:
    text = f"{rng.choice(SUBJECTS[actor])} {rng.choice(VERBS)} {rng.choice(CLAUSES)}"
    for _ in range(clauses - 1):
        text += f", {rng.choice(CONNECTORS)} {rng.choice(CLAUSES)}"
    return text + "."


def sentence_of_length(rng: random.Random, tokenizer, actor: str, target: int) -> str:
    """A sentence whose (actor, sentence) pair has about ``target`` tokens (a little under
    when a word boundary does not fall exactly there)."""
    sentence = compose(rng, actor, 1)
    while pair_length(tokenizer, sentence, actor) < target:
        sentence = sentence[:-1] + f", {rng.choice(CONNECTORS)} {rng.choice(CLAUSES)}."
    words = sentence[:-1].split()
    while len(words) > 3 and pair_length(tokenizer, " ".join(words) + ".", actor) > target:
        words.pop()
    return " ".join(words) + "."


def news_rows(tokenizer, n: int, seed: int = SEED, length: int | None = None) -> list:
    """``n`` (sentence, actor) rows. Without ``length``: pair lengths spread like news
    (a log-normal around MEAN_PAIR_TOKENS, 12 to 120 tokens); with it: about that long.
    Built from a pool of at most 600 distinct sentences, sampled with replacement."""
    rng = random.Random(seed)
    actors = list(SUBJECTS)
    pool = []
    for _ in range(min(n, 600)):
        actor = rng.choice(actors)
        if length is None:
            target = int(min(120, max(12, rng.lognormvariate(3.52, 0.38))))
        else:
            target = length
        pool.append((sentence_of_length(rng, tokenizer, actor, target), actor))
    return pool + [rng.choice(pool) for _ in range(n - len(pool))]


def mean_tokens(tokenizer, rows: list) -> float:
    return statistics.fmean(pair_length(tokenizer, s, a) for s, a in rows[:600])


# --------------------------------------------------------------------------- figures


@dataclass
class Figure:
    name: str
    sentences: int
    seconds: float
    latencies_ms: list[float]  # per request / call / sentence, as the row says
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.sentences / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def header() -> None:
    print("| run | sentences | sentences/s | p50 ms | p95 ms | p99 ms | × naive |")
    print("|---|---:|---:|---:|---:|---:|---:|")


def row(figure: Figure, naive: Figure | None) -> None:
    ratio = f"{figure.rate / naive.rate:.1f}×" if naive else "1.0×"
    errors = f" ({figure.errors} errors)" if figure.errors else ""
    print(
        f"| {figure.name}{errors} | {figure.sentences} | {figure.rate:.0f} | "
        f"{figure.pct(50):.1f} | {figure.pct(95):.1f} | {figure.pct(99):.1f} | {ratio} |",
        flush=True,
    )


@dataclass
class Spread:
    """One arm's figures over the rounds: sentences/s, p99 ms, ratio to its round's naive."""

    name: str
    rates: list[float] = dataclasses.field(default_factory=list)
    p99s: list[float] = dataclasses.field(default_factory=list)
    ratios: list[float] = dataclasses.field(default_factory=list)
    errors: int = 0

    def add(self, figure: Figure, naive: Figure) -> None:
        self.rates.append(figure.rate)
        self.p99s.append(figure.pct(99))
        self.ratios.append(figure.rate / naive.rate)
        self.errors += figure.errors


def median_range(values: list[float], digits: int, unit: str = "") -> str:
    """'4.1× (3.7–4.4)': the median and, for more than one value, the range."""
    middle = f"{statistics.median(values):.{digits}f}{unit}"
    if len(values) < 2:
        return middle
    return f"{middle} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def spread_table(spreads: list[Spread]) -> None:
    print("| run | rounds | sentences/s | p99 ms | × naive of its round |")
    print("|---|---:|---:|---:|---:|")
    for spread in spreads:
        errors = f" ({spread.errors} errors)" if spread.errors else ""
        print(
            f"| {spread.name}{errors} | {len(spread.rates)} | {median_range(spread.rates, 0)} | "
            f"{median_range(spread.p99s, 1)} | {median_range(spread.ratios, 1, '×')} |",
            flush=True,
        )


# --------------------------------------------------------------------------- model-only


def naive_loop(model_dir: Path, rows: list) -> Figure:
    """What a new user writes: tokenizer + model, fp32, one sentence per forward pass."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipeline.formatting import model_input
    from pipeline.model import register_architecture

    register_architecture()  # the model's own model_type (marker pooling)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    max_length = json.loads((model_dir / "inference.json").read_text())["max_length"]

    def one(sentence: str, actor: str) -> None:
        first, second = model_input(sentence, actor)
        encoded = tokenizer(
            first, second, truncation="only_second", max_length=max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            torch.softmax(model(**encoded).logits, dim=-1)

    for sentence, actor in rows[:10]:  # warm-up
        one(sentence, actor)
    latencies, started = [], time.perf_counter()
    for sentence, actor in rows:
        begin = time.perf_counter()
        one(sentence, actor)
        latencies.append(1000 * (time.perf_counter() - begin))
    return Figure("naive loop (torch fp32, 1 sentence per pass)", len(rows),
                  time.perf_counter() - started, latencies)  # fmt: skip


def predictor_run(model_dir: Path, rows: list, batch_size: int, name: str) -> Figure:
    from pipeline.inference import StancePredictor

    predictor = StancePredictor(model_dir)
    predictor.predict(rows[: 2 * batch_size], batch_size=batch_size)  # warm-up
    latencies, started = [], time.perf_counter()
    for begin in range(0, len(rows), batch_size):
        chunk = rows[begin : begin + batch_size]
        t0 = time.perf_counter()
        predictor.predict(chunk, batch_size=batch_size)
        latencies.append(1000 * (time.perf_counter() - t0))
    label = f"predictor {predictor.backend_name} {predictor.precision}, batch {batch_size}"
    return Figure(f"{label} ({name})" if name else label, len(rows),
                  time.perf_counter() - started, latencies)  # fmt: skip


# --------------------------------------------------------------------------- service


class Client:
    """One keep-alive HTTP connection (one client of the load)."""

    def __init__(self, url: str):
        parsed = urlparse(url)
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)

    def post(self, path: str, body: object) -> tuple[int, bytes, dict]:
        payload = json.dumps(body)
        self.connection.request("POST", path, payload, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())


def load(url: str, rows: list, clients: int, per_request: int, requests_each: int,
         name: str) -> Figure:  # fmt: skip
    """``clients`` threads, each sending ``requests_each`` /classify requests of
    ``per_request`` rows back to back; latency per request."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def work(index: int) -> None:
        client = Client(url)
        offset = index * requests_each * per_request
        start.wait()
        for r in range(requests_each):
            begin = offset + r * per_request
            chosen = [rows[(begin + i) % len(rows)] for i in range(per_request)]
            items = [{"sentence": s, "actor": a} for s, a in chosen]
            t0 = time.perf_counter()
            status, _, _ = client.post("/classify", {"items": items})
            elapsed = 1000 * (time.perf_counter() - t0)
            with lock:
                latencies.append(elapsed)
                errors[0] += status != 200

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    served = (clients * requests_each - errors[0]) * per_request  # failed requests count 0
    return Figure(name, served, seconds, latencies, errors[0])


@contextlib.contextmanager
def running_service(url: str | None) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
        return
    try:
        with launch.bentoml_serve("bench-serve-", READY_TIMEOUT_S, REPO_ROOT) as (base, _, _):
            yield base
    except launch.ServerFailed as error:
        raise SystemExit(str(error)) from None


# --------------------------------------------------------------------------- cost growth


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scale_child(model_dir: Path, n: int, length: int | None) -> None:
    """In a fresh process: predict ``n`` rows; print time and peak memory as JSON."""
    from pipeline.inference import StancePredictor

    predictor = StancePredictor(model_dir)
    tokenizer = predictor_tokenizer(model_dir)
    rows = news_rows(tokenizer, n, seed=SEED + 1, length=length)
    predictor.predict(rows[:64])  # warm-up
    before = rss_mb()
    started = time.perf_counter()
    predictor.predict(rows, batch_size=32)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), "before_mb": before,
                      "tokens": mean_tokens(tokenizer, rows)}))  # fmt: skip


def figure_child(kind: str, model_dir: Path, n: int) -> None:
    """In a fresh process: one model-only figure, printed as JSON. Each runtime gets a
    process of its own: torch's idle OpenMP threads keep spinning after a torch run and
    took cores from ONNX Runtime in the same process (measured: ONNX int8 at 119
    sentences/s after a torch run, about 300 alone)."""
    tokenizer = predictor_tokenizer(model_dir)
    rows = news_rows(tokenizer, ROWS)[:n]  # the same rows as the parent's
    if kind == "naive":
        found = naive_loop(model_dir, rows)
    else:
        found = predictor_run(model_dir, rows, 32, "")
    print(json.dumps(dataclasses.asdict(found)))


def figure_run(kind: str, model_dir: Path, n: int) -> Figure:
    command = [sys.executable, __file__, "--figure", kind, str(model_dir), str(n)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return Figure(**json.loads(done.stdout.strip().splitlines()[-1]))


def scale_run(model_dir: Path, n: int, length: int | None) -> dict:
    command = [sys.executable, __file__, "--child", str(model_dir), str(n), str(length or 0)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def predictor_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    from pipeline.model_config import register_config

    register_config()  # config.json names stance-bert (marker pooling)
    return AutoTokenizer.from_pretrained(model_dir)


# --------------------------------------------------------------------------- main


def machine() -> str:
    import onnxruntime
    import torch

    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {len(os.sched_getaffinity(0))} cores, {memory:.0f} GiB RAM, "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}; load average at start "
        f"{os.getloadavg()[0]:.1f} (other processes share the cores)"
    )


def paths() -> tuple[Path, Path]:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))["paths"]
    return REPO_ROOT / params["model_dir"], REPO_ROOT / params["onnx_dir"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running service; default: start one")
    parser.add_argument("--quick", action="store_true", help="fewer rows (a smoke run)")
    parser.add_argument(
        "--rounds", type=int, default=3,
        help="times the naive loop and the service arms run, interleaved (default 3)",
    )  # fmt: skip
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--figure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1 (got {args.rounds})")
    if args.figure:
        kind, model_dir, count = args.figure
        figure_child(kind, Path(model_dir), int(count))
        return
    if args.child:
        model_dir, n, length = args.child
        scale_child(Path(model_dir), int(n), int(length) or None)
        return

    torch_dir, onnx_dir = paths()
    for directory in (torch_dir, onnx_dir):
        if not (directory / "inference.json").is_file():
            raise SystemExit(f"{directory} is not a model directory: run `dvc repro` first")
    scale = 0.1 if args.quick else 1.0

    def n(count: int) -> int:
        return max(32, int(count * scale))

    tokenizer = predictor_tokenizer(torch_dir)
    rows = news_rows(tokenizer, ROWS)
    print(f"machine: {machine()}")
    print(f"sentences: invented news-like pairs, mean {mean_tokens(tokenizer, rows):.1f} tokens")
    print()
    header()
    naive = figure_run("naive", torch_dir, n(600))
    row(naive, None)
    row(figure_run("predictor", torch_dir, n(2048)), naive)
    row(figure_run("predictor", onnx_dir, n(4096)), naive)

    with running_service(args.url) as url:
        status, body, headers = Client(url).post("/metadata", {})
        model = json.loads(body)["model"]
        served = f"{model['backend']} {model['precision']}"
        # Warm-up (first requests pay for lazy initialisation), not counted.
        load(url, rows, 4, 1, 10, "warm-up")
        load(url, rows, 4, 32, 4, "warm-up")
        runs: list[tuple[int, int, int]] = [(4, 32, n(40)), (1, 1, n(300)), (4, 1, n(150)),
                                            (16, 1, n(60))]  # fmt: skip
        naive_spread = Spread(naive.name)
        naive_spread.add(naive, naive)
        spreads = {
            (clients, per_request): Spread(
                f"service {served}: {clients} clients × {per_request} per request"
            )
            for clients, per_request, _ in runs
        }
        for round_index in range(args.rounds):
            if round_index:  # round 0 uses the naive loop measured above
                naive = figure_run("naive", torch_dir, n(600))
                naive_spread.add(naive, naive)
                print(f"round {round_index + 1} of {args.rounds}: naive loop "
                      f"{naive.rate:.0f} sentences/s", file=sys.stderr, flush=True)  # fmt: skip
            for clients, per_request, each in runs:
                spread = spreads[clients, per_request]
                figure = load(url, rows, clients, per_request, each, spread.name)
                spread.add(figure, naive)
                if not round_index:
                    row(figure, naive)
        cores = len(os.sched_getaffinity(0))
        print(f"\nserved model: {model['tag']} ({served}); latencies per request; "
              f"clients and server share the same {cores} cores")  # fmt: skip
    if args.rounds > 1:
        print(f"\nOver {args.rounds} rounds (naive loop, then each service arm, in turn); "
              "median (min–max):")  # fmt: skip
        print()
        spread_table([naive_spread, *spreads.values()])

    print("\nCost growth through the predictor (ONNX directory, batch 32, a fresh process each):")
    print()
    print("| rows | tokens per pair | seconds | sentences/s | peak RSS MB | peak − RSS before MB |")
    print("|---:|---:|---:|---:|---:|---:|")
    max_length = json.loads((onnx_dir / "inference.json").read_text())["max_length"]
    for length in (16, 32, 64, 128):
        found = scale_run(onnx_dir, n(2048), length)
        cut = f" (cut to {max_length})" if length > max_length else ""
        tokens = f"{found['tokens']:.0f}{cut}"
        print_scale(n(2048), tokens, found)
    for count in (1_000, 10_000, 100_000):
        found = scale_run(onnx_dir, n(count), None)
        print_scale(n(count), f"{found['tokens']:.0f} (mixed)", found)


def print_scale(count: int, tokens: str, found: dict) -> None:
    print(
        f"| {count} | {tokens} | {found['seconds']:.2f} | {count / found['seconds']:.0f} | "
        f"{found['peak_mb']:.0f} | {found['peak_mb'] - found['before_mb']:.0f} |",
        flush=True,
    )


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    main()
