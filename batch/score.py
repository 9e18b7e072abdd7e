"""Single-process corpus scoring: read, score whole documents in chunks, commit, report.

Documents stream through: each is segmented and its (sentence, actor) rows selected as
it is read (``pipeline.documents.candidates``); rows are predicted ``chunk_rows`` at a
time and documents committed as soon as all their rows are, so memory holds about one
chunk whatever the corpus size. Rejects go to the rejects file as
they are found; ``strict`` stops at the first, after committing the documents before it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from batch.inputs import Document
from batch.outputs import Writer
from pipeline.documents import Predictor, Selection, assemble, candidates
from pipeline.records import Problem

logger = logging.getLogger(__name__)


class StrictStop(RuntimeError):
    """--strict: the first reject stops the run; the message is ``file:line: reason``."""


@dataclass
class Summary:
    documents_read: int = 0  # valid documents in the inputs
    documents_scored: int = 0  # of which scored in this run
    documents_skipped: int = 0  # of which already in OUT (resumed)
    sentences: int = 0  # content sentences of the documents scored in this run
    rows: int = 0  # (sentence, actor) rows written in this run
    rejected: int = 0
    seconds: float = 0.0
    reject_examples: list[str] = field(default_factory=list)

    def line(self) -> str:
        rate = self.sentences / self.seconds if self.seconds > 0 else 0.0
        return (
            f"scored {self.documents_scored:,} document(s), {self.sentences:,} sentence(s), "
            f"{self.rows:,} row(s) in {self.seconds:.1f} s ({rate:,.1f} sentences/s); "
            f"skipped {self.documents_skipped:,} already in OUT; rejected {self.rejected:,}"
        )


class Progress:
    """A tqdm bar (documents, sentences/s, ETA) on a terminal, else a log line every
    ``every`` seconds."""

    def __init__(self, total: int | None, every: float = 10.0, tty: bool | None = None):
        self.total, self.every = total, every
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.documents = self.sentences = 0
        self.started = self.last = time.monotonic()
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="doc", file=sys.stderr, dynamic_ncols=True)

    def update(self, documents: int, sentences: int) -> None:
        self.documents += documents
        self.sentences += sentences
        now = time.monotonic()
        rate = self.sentences / max(now - self.started, 1e-9)
        if self.bar is not None:
            self.bar.update(documents)
            self.bar.set_postfix_str(f"{rate:,.1f} sentences/s", refresh=False)
        elif now - self.last >= self.every:
            self.last = now
            logger.info("progress: %s", self.status(now, rate))

    def status(self, now: float, rate: float) -> str:
        elapsed = now - self.started
        done = f"{self.documents:,}" + (f"/{self.total:,}" if self.total else "")
        eta = ""
        if self.total and self.documents:
            remaining = elapsed / self.documents * max(self.total - self.documents, 0)
            eta = f", ETA {time.strftime('%H:%M:%S', time.gmtime(remaining))}"
        return f"{done} documents, {self.sentences:,} sentences, {rate:,.1f} sentences/s{eta}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def rows_of(document: Document, scored, model_columns: dict) -> list[dict]:
    """The output rows of one scored document: one per (sentence, actor)."""
    return [
        {
            "doc_id": document.id,
            "date": document.date,
            "source": document.source,
            "sentence_index": sentence.index,
            "start": sentence.start,
            "end": sentence.end,
            "sentence": sentence.text,
            "actor": prediction.actor,
            "stance": prediction.stance,
            **{f"score_{label}": float(value) for label, value in prediction.scores.items()},
            "truncated": bool(prediction.truncated),
            **model_columns,
        }
        for sentence in scored
        for prediction in sentence.predictions
    ]


class RejectLog:
    """The rejects file of a run (rewritten by each run, which re-reads every input)."""

    def __init__(self, path: Path, summary: Summary, strict: bool):
        self.path, self.summary, self.strict = path, summary, strict
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def add(self, reject: Problem) -> None:
        self.handle.write(f"{reject}\n")
        self.handle.flush()
        self.summary.rejected += 1
        if len(self.summary.reject_examples) < 5:
            self.summary.reject_examples.append(str(reject))
        logger.warning("reject: %s", reject)

    def close(self) -> None:
        self.handle.close()


def documents_to_score(
    items: Iterable[Document | Problem], done: set[str], rejects: RejectLog, summary: Summary,
    progress: Progress,
) -> Iterator[Document]:  # fmt: skip
    """The documents not yet in OUT; rejects logged, skipped documents counted."""
    for item in items:
        if isinstance(item, Problem):
            rejects.add(item)
            if rejects.strict:
                raise StrictStop(str(item))
            continue
        summary.documents_read += 1
        if item.id in done:
            summary.documents_skipped += 1
            progress.update(1, 0)
            continue
        yield item


def score_stream(
    items: Iterable[Document | Problem],
    predictor: Predictor,
    writer: Writer,
    model_columns: dict,
    rejects: RejectLog,
    progress: Progress,
    batch_size: int = 32,
    chunk_rows: int = 512,
) -> Summary:
    """Score every new document of ``items`` into ``writer``; the run's summary.

    The (sentence, actor) rows of consecutive documents form one stream, predicted
    ``chunk_rows`` at a time (the last call takes the rest): a predict call sees the
    same rows whatever the document boundaries, which is what lets Spark reproduce
    this run exactly (``batch.spark`` feeds its UDF the same slices). A document is
    committed once all its rows are predicted. On a StrictStop or an interrupt, the
    documents read so far are scored and committed before it propagates, so a rerun
    resumes after them.
    """
    summary = rejects.summary
    started = time.monotonic()
    pending: deque[tuple[Document, Selection]] = deque()
    pairs: list[tuple[str, str]] = []  # rows of the pending documents, in order
    predicted: list = []  # predictions of pairs[: len(predicted)]
    busy = [False]

    def advance(final: bool) -> None:
        while len(pairs) - len(predicted) >= chunk_rows or (final and len(pairs) > len(predicted)):
            begin = len(predicted)
            predicted.extend(predictor.predict(pairs[begin : begin + chunk_rows], batch_size))
        complete, used = [], 0
        for document, selection in pending:
            if used + len(selection.rows) > len(predicted):
                break
            scored = assemble(selection, predicted[used : used + len(selection.rows)])
            complete.append((document, selection, scored))
            used += len(selection.rows)
        if not complete:
            return
        rows = [row for d, _, scored in complete for row in rows_of(d, scored, model_columns)]
        # The queues move on before the commit: an interrupted commit is cut on resume and
        # rescored then, never written twice. ``busy`` marks the queues as half-moved.
        busy[0] = True
        for _ in complete:
            pending.popleft()
        del pairs[:used], predicted[:used]
        busy[0] = False
        writer.commit(rows)
        sentence_count = sum(len(selection.sentences) for _, selection, _ in complete)
        summary.documents_scored += len(complete)
        summary.sentences += sentence_count
        summary.rows += len(rows)
        progress.update(len(complete), sentence_count)

    try:
        for document in documents_to_score(items, writer.done, rejects, summary, progress):
            selection = candidates(document.text)
            pending.append((document, selection))
            pairs.extend(selection.pairs())
            advance(final=False)
        advance(final=True)
        writer.finish()
    except (StrictStop, KeyboardInterrupt):
        if not busy[0]:
            advance(final=True)
        raise
    finally:
        summary.seconds = time.monotonic() - started
    return summary
