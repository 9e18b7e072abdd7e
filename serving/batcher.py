"""Greedy micro-batching: rows of concurrent requests merged into shared model passes.

One inference thread owns the predictor. Request threads put their rows on a queue
and wait; whenever the inference thread is free it takes everything queued (whole
requests, up to ``max_batch_rows`` rows) and runs it as one call. There is no batching
window: an idle service answers a lone request at once, and under load the requests
that arrive while a pass runs form the next batch. (BentoML's adaptive dispatcher,
which this replaces, holds requests for a learnt window and needs the model in a
second process reached over a socket; measured on this machine, a lone sentence
waited 141 ms at p50 for a model pass of about 10 ms. Figures: README, `make bench`.)

The queue is bounded (``max_queued_rows``): a request that would exceed it is refused
with ``Overloaded`` at once (the service answers 503) instead of waiting without end.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Row = TypeVar("Row")
Result = TypeVar("Result")


class Overloaded(RuntimeError):
    """The queue holds too many rows to take this request now."""


@dataclass
class _Job(Generic[Row, Result]):
    rows: Sequence[Row]
    done: threading.Event = field(default_factory=threading.Event)
    results: list[Result] | None = None
    error: BaseException | None = None


class MicroBatcher(Generic[Row, Result]):
    """``predict`` (a list of rows -> one result per row, in order) behind a shared queue.

    ``submit`` is called from many threads; ``predict`` only ever runs on the batcher's
    own thread, one call at a time. ``start`` begins that thread (not at construction:
    no side effects before the caller is ready); ``stop`` ends it after the current pass.
    """

    def __init__(
        self,
        predict: Callable[[list[Row]], list[Result]],
        max_batch_rows: int,
        max_queued_rows: int,
        name: str = "micro-batcher",
    ):
        if max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be >= 1, got {max_batch_rows}")
        if max_queued_rows < max_batch_rows:
            raise ValueError(
                f"max_queued_rows ({max_queued_rows}) must be >= max_batch_rows ({max_batch_rows})"
            )
        self._predict = predict
        self.max_batch_rows = max_batch_rows
        self.max_queued_rows = max_queued_rows
        self._name = name
        self._jobs: deque[_Job[Row, Result]] = deque()
        self._queued_rows = 0
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> MicroBatcher[Row, Result]:
        with self._condition:
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    @property
    def queued_rows(self) -> int:
        with self._condition:
            return self._queued_rows

    def submit(self, rows: Sequence[Row]) -> list[Result]:
        """The results of ``rows``, in order; blocks until their pass has run.

        A request larger than ``max_batch_rows`` runs as one pass of its own (the
        predictor sorts and splits it into its own batches). Raises ``Overloaded`` when
        the queue cannot take the rows, and whatever ``predict`` raised for this batch.
        """
        if not rows:
            return []
        job: _Job[Row, Result] = _Job(rows)
        with self._condition:
            if self._thread is None or self._stopping:
                raise RuntimeError(f"{self._name} is not running")
            if self._queued_rows and self._queued_rows + len(rows) > self.max_queued_rows:
                raise Overloaded(
                    f"{self._queued_rows} rows are waiting; a request of {len(rows)} rows "
                    f"would pass the queue limit of {self.max_queued_rows}: retry later"
                )
            self._jobs.append(job)
            self._queued_rows += len(rows)
            self._condition.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.results is not None
        return job.results

    def _take(self) -> list[_Job[Row, Result]] | None:
        """Whole jobs from the queue head, up to max_batch_rows rows (at least one job)."""
        with self._condition:
            while not self._jobs and not self._stopping:
                self._condition.wait()
            if not self._jobs:
                return None
            taken = [self._jobs.popleft()]
            size = len(taken[0].rows)
            while self._jobs and size + len(self._jobs[0].rows) <= self.max_batch_rows:
                size += len(self._jobs[0].rows)
                taken.append(self._jobs.popleft())
            self._queued_rows -= size
            return taken

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            rows = [row for job in jobs for row in job.rows]
            try:
                results = self._predict(rows)
                if len(results) != len(rows):
                    raise RuntimeError(f"predict gave {len(results)} results for {len(rows)} rows")
            except BaseException as error:  # every waiting caller gets the error
                logger.exception("model pass of %d rows failed", len(rows))
                for job in jobs:
                    job.error = error
                    job.done.set()
                continue
            begin = 0
            for job in jobs:
                job.results = results[begin : begin + len(job.rows)]
                begin += len(job.rows)
                job.done.set()
        # Stopped: callers still queued are told so rather than left waiting.
        with self._condition:
            while self._jobs:
                job = self._jobs.popleft()
                job.error = RuntimeError(f"{self._name} stopped")
                job.done.set()
            self._queued_rows = 0
