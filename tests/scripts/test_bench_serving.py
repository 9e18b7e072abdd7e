"""scripts/bench_serving.py's spread over rounds (the benchmark itself is run by `make bench`)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("bench_serving")


def figure(bench, sentences: int, seconds: float, latencies: list[float], errors: int = 0):
    return bench.Figure("arm", sentences, seconds, latencies, errors)


def test_each_round_is_divided_by_its_own_naive_loop(bench) -> None:
    spread = bench.Spread("service")
    slow_naive, fast_naive = figure(bench, 100, 2.0, [1.0]), figure(bench, 100, 1.0, [1.0])
    spread.add(figure(bench, 400, 2.0, [10.0] * 99 + [50.0]), slow_naive)  # 200/s vs 50/s
    spread.add(figure(bench, 300, 1.0, [10.0] * 99 + [70.0], errors=2), fast_naive)  # 300 vs 100

    assert spread.rates == [200.0, 300.0]
    assert spread.ratios == [4.0, 3.0]
    assert spread.p99s == [50.0, 70.0]
    assert spread.errors == 2


def test_median_and_range(bench) -> None:
    assert bench.median_range([4.4, 3.7, 4.1], 1, "×") == "4.1× (3.7–4.4)"
    assert bench.median_range([49.2], 1) == "49.2"  # one round: no range


def test_the_spread_table_has_a_row_per_arm(bench, capsys) -> None:
    naive, arm = bench.Spread("naive loop"), bench.Spread("service: 4 clients × 32")
    base = figure(bench, 60, 1.0, [1.0])
    naive.add(base, base)
    arm.add(figure(bench, 240, 1.0, [5.0], errors=1), base)

    bench.spread_table([naive, arm])

    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| naive loop | 1 | 60 | 1.0 | 1.0× |"
    assert lines[3] == "| service: 4 clients × 32 (1 errors) | 1 | 240 | 5.0 | 4.0× |"
