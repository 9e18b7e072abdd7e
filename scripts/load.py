"""Sustained load on the stance service over loopback: prints figures (it is not a test).

CLIENTS client threads (keep-alive sessions) send REQUESTS requests in all, mixed:
/classify with 1 to 128 items and /score with documents of 1 to 12 sentences, on
sentence lengths from one clause to far over the model's max tokens. Every sentence
is invented here from institutional phrasing (no corpus, seed or dev text; no
person is quoted). The plan is drawn from one seed, so two runs send the same bodies.
An answer counts as an error unless it is a 200 with one row per item (/classify) or
per actor detected in each sentence (/score, computed here with pipeline.documents).

The memory figure is the resident set (RSS) of the service's whole process tree: the
`bentoml serve` process and its workers, summed (and printed per process at each
quarter of the run). It is read after a warm-up (not counted in the figures),
sampled every second during the run, and read again at the end; growth is end
against start. The exit status is 1 when a request failed or the
growth reached MAX_GROWTH_PCT.

Usage (repository root, with a model in the local BentoML store): make load
  or: python scripts/load.py [--url http://127.0.0.1:3000] [--clients 16] [--requests 10000]
Without --url the script starts `bentoml serve` on a free loopback port (the store's
default model, as `make serve` serves it) and stops it at the end; with --url the
service must run on this machine (its process is found by the port it listens on).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from serving import launch

REPO_ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 16
REQUESTS = 10_000
# Warm-up requests (the same mix, another seed; not counted). The request-handling
# process's footprint settles only after a while of the full mix: with a 200-request
# warm-up (and the model then in a second process) it grew by 11 % over the run, almost
# all in the first half, and was flat over the last quarter (the trajectory printed).
WARMUP = 1_000
SEED = 20251107
MAX_GROWTH_PCT = 10.0
READY_TIMEOUT_S = 180
TIMEOUT_S = 120  # the service's own request timeout
CLASSIFY_SHARE = 0.65
# /classify items per request: (low, high, weight).
ITEM_COUNTS = [(1, 1, 35), (2, 8, 35), (9, 32, 25), (33, 128, 5)]

# Invented phrasing: institutions, not people, say things here.
SUBJECTS = {
    "japan": ["Japan's foreign ministry", "Tokyo", "the Japanese cabinet office",
              "officials in Tokyo", "Japan's coast guard", "a Japanese government panel"],
    "china": ["China's foreign ministry", "Beijing", "the Chinese embassy in Tokyo",
              "China's commerce ministry", "officials in Beijing", "a Chinese state newspaper"],
    "us": ["the US State Department", "Washington", "the US embassy in Tokyo",
           "the Pentagon", "American diplomats", "a US congressional delegation"],
    "taiwan": ["Taiwan's presidential office", "Taipei", "Taiwan's mainland affairs council",
               "Taiwan's coast guard administration"],
    "other": ["South Korea's foreign ministry", "the European Commission", "Canberra",
              "a Southeast Asian trade bloc", "the Philippine foreign office"],
}  # fmt: skip
VERBS = ["said", "warned", "stated", "told reporters", "insisted", "argued", "noted",
         "repeated", "signalled", "announced", "wrote in a statement", "confirmed"]  # fmt: skip
CLAUSES = [
    "that the remarks about a contingency near the strait were being misread",
    "that it saw no reason to revisit the statement made to lawmakers",
    "that talks between the two capitals should resume before the winter",
    "that a ban on some fishery imports would stay in place for now",
    "that its security partnership in the region was as firm as ever",
    "that patrol vessels had been sighted near the outlying islands again",
    "that guidance for travellers and students would be updated shortly",
    "that every side ought to refrain from moves that escalate the row",
    "that it was following developments with great attention",
    "that a planned ministerial meeting might slip to next year",
    "that a protest had been delivered through the usual channels",
    "that any attempt to alter the status quo by coercion was rejected",
    "that trade measures would not shift its stance on the matter",
    "that the ambassador had been called in for an explanation",
    "that exchanges between parliamentary groups would go ahead",
    "that the joint exercise had been scheduled long before the dispute",
]  # fmt: skip
CONNECTORS = ["and", "while adding", "even as officials said", "after reports",
              "although", "because", "as observers pointed out"]  # fmt: skip


def sentence(rng: random.Random, actor: str) -> str:
    """One invented sentence about ``actor``: usually one to three clauses, sometimes
    (1 in 20) eight to twenty, far over the model's max tokens."""
    clauses = rng.randint(8, 20) if rng.random() < 0.05 else rng.choice([1, 1, 2, 3])
    text = f"{rng.choice(SUBJECTS[actor])} {rng.choice(VERBS)} {rng.choice(CLAUSES)}"
    for _ in range(clauses - 1):
        text += f", {rng.choice(CONNECTORS)} {rng.choice(CLAUSES)}"
    return text + "."


def classify_body(rng: random.Random) -> dict:
    low, high, _ = rng.choices(ITEM_COUNTS, weights=[w for *_, w in ITEM_COUNTS])[0]
    items = []
    for _ in range(rng.randint(low, high)):
        actor = rng.choice(list(SUBJECTS))
        items.append({"sentence": sentence(rng, actor), "actor": actor})
    return {"items": items}


def score_body(rng: random.Random) -> dict:
    sentences = [sentence(rng, rng.choice(list(SUBJECTS))) for _ in range(rng.randint(1, 12))]
    text = ""
    for i, one in enumerate(sentences):  # paragraphs of a few sentences
        text += ("\n" if i and rng.random() < 0.3 else " " if i else "") + one
    body: dict = {"text": text}
    if rng.random() < 0.25:
        body["actors"] = rng.sample(list(SUBJECTS), rng.randint(1, 3))
    return body


def plan(n: int, seed: int) -> list[tuple[str, dict]]:
    """``n`` (path, body) requests, /classify in CLASSIFY_SHARE of them."""
    rng = random.Random(seed)
    return [
        ("/classify", classify_body(rng))
        if rng.random() < CLASSIFY_SHARE
        else ("/score", score_body(rng))
        for _ in range(n)
    ]


def expected_rows(path: str, body: dict) -> int:
    """The (sentence, actor) rows a correct answer scores: one per item, or one per
    actor detected in each sentence of the document (pipeline.documents, as the
    service does)."""
    if path == "/classify":
        return len(body["items"])
    from pipeline.documents import candidates

    return len(candidates(body["text"], body.get("actors")).rows)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))  # ceil(q/100 * n)
    return ordered[rank - 1]


# --------------------------------------------------------------------------- the service


@contextlib.contextmanager
def running_service(url: str | None) -> Iterator[tuple[str, int | None, str]]:
    """(base URL, pid of the `bentoml serve` process if started here, how it was found)."""
    if url:
        url = url.rstrip("/")
        try:
            launch.wait_ready(url, READY_TIMEOUT_S)
        except launch.ServerFailed as error:
            raise SystemExit(str(error)) from None
        yield url, None, "given with --url"
        return
    try:
        with launch.bentoml_serve("load-serve-", READY_TIMEOUT_S, REPO_ROOT) as (url, process, log):
            yield url, process.pid, f"started here (log {log})"
    except launch.ServerFailed as error:
        raise SystemExit(str(error)) from None


def server_root(url: str, pid: int | None):
    """The service's top process: the one started here, or the top of the tree of the
    process listening on the URL's port (the circus arbiter of `bentoml serve`)."""
    import psutil

    if pid is not None:
        return psutil.Process(pid)
    port = urlparse(url).port or 80
    for connection in psutil.net_connections(kind="inet"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            process = psutil.Process(connection.pid)
            while process.parent() is not None and "bentoml" in " ".join(
                process.parent().cmdline()
            ):
                process = process.parent()
            return process
    raise SystemExit(f"no process on this machine listens on port {port} of {url}")


def role(process) -> str:
    """Which part of `bentoml serve` a process is: the arbiter or a service's worker."""
    command = process.cmdline()
    if "--service-name" in command:
        return command[command.index("--service-name") + 1]
    return "StanceService" if "_bentoml_impl.worker.service" in command else "bentoml serve"


def tree_rss_mb(root) -> dict[str, float]:
    """RSS (MB) of ``root`` and each of its descendants, by role."""
    import psutil

    rss: dict[str, float] = {}
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            name = role(process)
            rss[name] = rss.get(name, 0.0) + process.memory_info().rss / 1e6
    return rss


# --------------------------------------------------------------------------- the load


@dataclass
class Results:
    latencies_ms: dict[str, list[float]] = field(
        default_factory=lambda: {"/classify": [], "/score": []}
    )
    rows: int = 0
    done: int = 0
    errors: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def run(
    url: str, requests_: list[tuple[str, dict]], clients: int, results: Results | None = None
) -> tuple[Results, float]:
    """Send ``requests_`` from ``clients`` threads. A request fails on an error status,
    a transport error, or an answer with another number of rows than expected_rows."""
    import requests

    results = results if results is not None else Results()
    expected = [expected_rows(path, body) for path, body in requests_]
    next_index = iter(range(len(requests_)))
    take = threading.Lock()

    def client() -> None:
        with requests.Session() as session:
            while True:
                with take:
                    index = next(next_index, None)
                if index is None:
                    return
                path, body = requests_[index]
                started = time.perf_counter()
                try:
                    response = session.post(url + path, json=body, timeout=TIMEOUT_S)
                    ok = response.status_code == 200
                    outcome = str(response.status_code)
                    rows = 0
                    if ok:
                        answer = response.json()
                        rows = (
                            len(answer)
                            if path == "/classify"
                            else sum(len(s["predictions"]) for s in answer["sentences"])
                        )
                        if rows != expected[index]:
                            ok, outcome = False, "200 with a wrong number of rows"
                except requests.RequestException as error:
                    ok, outcome, rows = False, type(error).__name__, 0
                elapsed = 1000 * (time.perf_counter() - started)
                with results.lock:
                    results.latencies_ms[path].append(elapsed)
                    results.rows += rows
                    results.done += 1
                    if not ok:
                        results.errors[f"{path} {outcome}"] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.perf_counter() - started


def sample_rss(root, results: Results, stop: threading.Event, samples: list) -> None:
    """(requests done, RSS by role) every second until ``stop``."""
    while not stop.wait(1.0):
        samples.append((results.done, tree_rss_mb(root)))


def trajectory(samples: list, start: dict, end: dict, total: int) -> list[tuple[str, dict]]:
    """RSS by role at the start, at each quarter of the run (the first sample past it)
    and at the end."""
    points = [("start", start)]
    for quarter in (25, 50, 75):
        later = [rss for done, rss in samples if done >= total * quarter / 100]
        if later:
            points.append((f"{quarter} %", later[0]))
    return [*points, ("end", end)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running service on this machine (default: start one)")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)

    import requests

    warmup = plan(args.warmup, args.seed + 1)
    measured = plan(args.requests, args.seed)
    kinds = Counter(path for path, _ in measured)
    print(
        f"stance-watch load: {args.clients} clients, {args.requests:,} requests "
        f"({kinds['/classify']:,} /classify, {kinds['/score']:,} /score), seed {args.seed}; "
        f"load average at start {os.getloadavg()[0]:.2f} (2 cores shared with the clients)",
        flush=True,
    )
    with running_service(args.url) as (url, pid, how):
        model = requests.post(f"{url}/metadata", timeout=TIMEOUT_S).json()["model"]
        root = server_root(url, pid)
        print(
            f"service {url}, {how}; model {model['tag']} "
            f"({model['backend']} {model['precision']}, registry version {model['version']})",
            flush=True,
        )
        warm, _ = run(url, warmup, args.clients)
        start = tree_rss_mb(root)
        results, stop, samples = Results(), threading.Event(), []
        sampler = threading.Thread(target=sample_rss, args=(root, results, stop, samples))
        sampler.start()
        seconds = run(url, measured, args.clients, results)[1]
        stop.set()
        sampler.join()
        end = tree_rss_mb(root)

    latencies = results.latencies_ms["/classify"] + results.latencies_ms["/score"]
    errors = sum(results.errors.values())
    start_mb, end_mb = sum(start.values()), sum(end.values())
    peak_mb = max([sum(rss.values()) for _, rss in samples] + [end_mb])
    growth = 100 * (end_mb - start_mb) / start_mb
    print(f"warm-up: {args.warmup} requests ({sum(warm.errors.values())} errors), not counted")
    print(f"requests: {len(latencies):,}   errors: {errors}")
    for label, values in [("all", latencies), *results.latencies_ms.items()]:
        print(
            f"latency ms {label:>9}: p50 {percentile(values, 50):7.1f}   "
            f"p95 {percentile(values, 95):7.1f}   p99 {percentile(values, 99):7.1f}   "
            f"mean {statistics.fmean(values):7.1f}   (n={len(values):,})"
        )
    print(
        f"throughput: {len(latencies) / seconds:.1f} requests/s, {results.rows / seconds:.0f} "
        f"rows/s ({results.rows:,} (sentence, actor) rows scored) over {seconds:.1f} s"
    )
    print(
        f"service RSS (bentoml serve and its workers): start {start_mb:.1f} MB (after "
        f"warm-up), peak {peak_mb:.1f} MB, end {end_mb:.1f} MB, growth {growth:+.1f} %"
    )
    roles = list(start)
    print(f"  RSS MB at    {'  '.join(f'{name:>14}' for name in roles)}  {'total':>8}")
    for label, rss in trajectory(samples, start, end, len(measured)):
        columns = "  ".join(f"{rss.get(name, 0.0):14.1f}" for name in roles)
        print(f"  {label:>10}  {columns}  {sum(rss.values()):8.1f}")
    for kind, count in results.errors.most_common():
        print(f"  error: {kind} x {count}")
    failed = errors > 0 or growth >= MAX_GROWTH_PCT
    if failed:
        print(f"FAILED: {errors} errors, memory growth {growth:+.1f} % (limit {MAX_GROWTH_PCT} %)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
