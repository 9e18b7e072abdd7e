"""serving.batcher: greedy micro-batching of concurrent requests (no model needed)."""

import threading

import pytest

from serving.batcher import MicroBatcher, Overloaded


class GatedModel:
    """Doubles each row; the first pass waits on ``gate`` so later requests queue up."""

    def __init__(self):
        self.gate = threading.Event()
        self.started = threading.Event()
        self.calls: list[list[int]] = []

    def __call__(self, rows: list[int]) -> list[int]:
        self.calls.append(list(rows))
        self.started.set()
        self.gate.wait(10)
        return [2 * r for r in rows]


def submit_in_thread(batcher, rows, out, key):
    def run():
        try:
            out[key] = batcher.submit(rows)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            out[key] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_queued(batcher, rows, timeout=5.0):
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if batcher.queued_rows >= rows:
            return
        done.wait(0.01)
    raise AssertionError(f"queue never reached {rows} rows (has {batcher.queued_rows})")


def test_requests_waiting_behind_a_pass_share_the_next_one_in_order():
    model = GatedModel()
    batcher = MicroBatcher(model, max_batch_rows=8, max_queued_rows=64).start()
    out: dict = {}
    threads = [submit_in_thread(batcher, [1], out, "first")]
    assert model.started.wait(5)
    threads += [submit_in_thread(batcher, [10, 11, 12], out, "a")]
    wait_queued(batcher, 3)
    threads += [submit_in_thread(batcher, [20, 21], out, "b")]
    wait_queued(batcher, 5)
    model.gate.set()
    for thread in threads:
        thread.join(5)
    assert out == {"first": [2], "a": [20, 22, 24], "b": [40, 42]}
    assert model.calls == [[1], [10, 11, 12, 20, 21]]
    batcher.stop(5)


def test_a_batch_never_passes_max_batch_rows_unless_one_request_is_larger():
    model = GatedModel()
    batcher = MicroBatcher(model, max_batch_rows=4, max_queued_rows=64).start()
    out: dict = {}
    threads = [submit_in_thread(batcher, [0], out, "first")]
    assert model.started.wait(5)
    queued = 0
    for key, rows in (("a", [1, 2, 3]), ("b", [4, 5]), ("big", list(range(6, 12)))):
        threads.append(submit_in_thread(batcher, rows, out, key))
        queued += len(rows)
        wait_queued(batcher, queued)  # one at a time: the queue order is the submit order
    model.gate.set()
    for thread in threads:
        thread.join(5)
    assert model.calls == [[0], [1, 2, 3], [4, 5], list(range(6, 12))]
    assert out["big"] == [2 * r for r in range(6, 12)]
    batcher.stop(5)


def test_a_full_queue_refuses_at_once_and_names_the_limit():
    model = GatedModel()
    batcher = MicroBatcher(model, max_batch_rows=4, max_queued_rows=6).start()
    out: dict = {}
    threads = [submit_in_thread(batcher, [0], out, "first")]
    assert model.started.wait(5)
    threads.append(submit_in_thread(batcher, [1, 2, 3, 4], out, "queued"))
    wait_queued(batcher, 4)
    with pytest.raises(Overloaded, match="queue limit of 6"):
        batcher.submit([5, 6, 7])
    model.gate.set()
    for thread in threads:
        thread.join(5)
    assert out["queued"] == [2, 4, 6, 8]
    batcher.stop(5)


def test_a_failing_pass_fails_its_callers_and_the_next_pass_still_runs():
    calls = []

    def model(rows):
        calls.append(rows)
        if -1 in rows:
            raise ValueError("bad row")
        return rows

    batcher = MicroBatcher(model, max_batch_rows=8, max_queued_rows=8).start()
    with pytest.raises(ValueError, match="bad row"):
        batcher.submit([-1])
    assert batcher.submit([3, 4]) == [3, 4]
    batcher.stop(5)


def test_a_wrong_result_count_is_an_error_not_a_misaligned_answer():
    batcher = MicroBatcher(lambda rows: rows[:-1], max_batch_rows=8, max_queued_rows=8).start()
    with pytest.raises(RuntimeError, match="1 results for 2 rows"):
        batcher.submit([1, 2])
    batcher.stop(5)


def test_submit_before_start_or_after_stop_is_refused():
    batcher = MicroBatcher(lambda rows: rows, max_batch_rows=2, max_queued_rows=2)
    with pytest.raises(RuntimeError, match="not running"):
        batcher.submit([1])
    batcher.start()
    assert batcher.submit([1]) == [1]
    batcher.stop(5)
    with pytest.raises(RuntimeError, match="not running"):
        batcher.submit([1])
    assert batcher.submit([]) == []


@pytest.mark.parametrize(("batch", "queue"), [(0, 4), (4, 3)])
def test_bad_limits_are_refused(batch, queue):
    with pytest.raises(ValueError, match="max_"):
        MicroBatcher(lambda rows: rows, max_batch_rows=batch, max_queued_rows=queue)
