"""`stance-watch score --engine spark`: the same scoring on Spark, through the MLflow model UDF.

The driver reads and checks the inputs exactly as the single-process CLI does (same
rejects file, same resume rule: documents already in OUT are skipped) and stages the
new documents as Parquet. Spark then runs two jobs:

1. documents -> (sentence, actor) rows with ``pipeline.documents.candidates`` (the
   segmentation and actor detection of the service and the CLI), staged as Parquet;
2. rows -> ``mlflow.pyfunc.spark_udf`` over the registered model (the pyfunc of
   ``pipeline.mlflow_model``, whose predictor is ``pipeline.inference.StancePredictor``)
   -> appended to OUT, a Parquet folder with the CLI's schema (``batch.outputs.SCHEMA``).

Two jobs rather than one: a Python worker that has loaded the logged model has the
model's own copy of ``pipeline`` first on its path, so segmentation runs before any
model is loaded. pyspark is the optional extra ``[spark]``; on a cluster, the package
must be installed on the executors as well.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from batch.inputs import Document
from batch.models import ModelChoice
from batch.outputs import COLUMNS, OutputError, ParquetWriter, spark_ddl
from batch.score import Progress, RejectLog, Summary, documents_to_score
from pipeline.inference import available_cores
from pipeline.mlflow_model import OUTPUT_COLUMNS
from pipeline.records import Problem

logger = logging.getLogger(__name__)

DOCUMENT_COLUMNS = ("doc_seq", "doc_id", "date", "source", "text")  # doc_seq: read order
CANDIDATE_COLUMNS = COLUMNS[: COLUMNS.index("actor") + 1]  # doc_id ... sentence, actor
ORDER_COLUMNS = ("doc_seq", "row_in_doc")  # the single-process CLI's row order
STAGE_DOCUMENTS = 1000  # documents per staged row group
_LOCAL_MASTER = re.compile(r"^local(?:\[(\d+|\*)(?:,\d+)?\])?$")


class SparkUnavailable(RuntimeError):
    pass


def local_slots(master: str) -> int | None:
    """Concurrent tasks of a local master (``local``, ``local[N]``, ``local[*]``)."""
    found = _LOCAL_MASTER.match(master)
    if not found:
        return None
    if found.group(1) in (None,):
        return 1
    return available_cores() if found.group(1) == "*" else int(found.group(1))


def spark_session(master: str, partitions: int):
    """A Spark session on ``master`` whose Python workers run this interpreter, with
    one torch/ONNX thread per task slot on a local master (no oversubscription)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkUnavailable(
            "the Spark engine needs pyspark: pip install -e '.[spark]' (and Java 17)"
        ) from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName("stance-watch score")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.executorEnv.TOKENIZERS_PARALLELISM", "false")
    )
    slots = local_slots(master)
    if slots is not None:
        threads = str(max(1, available_cores() // slots))
        builder = (
            builder.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.executorEnv.OMP_NUM_THREADS", threads)
            .config("spark.executorEnv.MKL_NUM_THREADS", threads)
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def candidate_frames(frames: Iterator, sentences=None) -> Iterator:
    """mapInPandas: documents (``DOCUMENT_COLUMNS``) -> rows (``CANDIDATE_COLUMNS`` and
    ``ORDER_COLUMNS``). ``sentences`` (a Spark accumulator) counts content sentences."""
    import pandas as pd

    from pipeline.documents import candidates

    names = (*CANDIDATE_COLUMNS, *ORDER_COLUMNS)
    for frame in frames:
        out: dict[str, list] = {name: [] for name in names}
        for doc_seq, doc_id, date, source, text in zip(
            *(frame[c] for c in DOCUMENT_COLUMNS), strict=True
        ):
            selection = candidates(text)
            if sentences is not None:
                sentences.add(len(selection.sentences))
            for row_in_doc, (index, actor) in enumerate(selection.rows):
                sentence = selection.sentences[index]
                values = (
                    doc_id, date, source, index, sentence.start, sentence.end, sentence.text,
                    actor, doc_seq, row_in_doc,
                )  # fmt: skip
                for name, value in zip(names, values, strict=True):
                    out[name].append(value)
        # Plain object columns: pyspark 4.3 cannot yet send pandas' Arrow-backed strings
        # (chunked arrays) back to the JVM (SPARK-58625).
        yield pd.DataFrame(out, columns=list(names), dtype=object)


def stage_documents(documents: Iterable[Document], path: Path) -> int:
    """The documents as a Parquet file (``DOCUMENT_COLUMNS``), written in row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [("doc_seq", pa.int64()), ("doc_id", pa.string()), ("date", pa.date32()),
         ("source", pa.string()), ("text", pa.string())]
    )  # fmt: skip
    count, group = 0, []
    with pq.ParquetWriter(path, schema) as writer:
        for document in documents:
            group.append(
                {"doc_seq": count + len(group), "doc_id": document.id, "date": document.date,
                 "source": document.source, "text": document.text}
            )  # fmt: skip
            if len(group) >= STAGE_DOCUMENTS:
                writer.write_table(pa.Table.from_pylist(group, schema=schema))
                count, group = count + len(group), []
        if group:
            writer.write_table(pa.Table.from_pylist(group, schema=schema))
            count += len(group)
    return count


def pyfunc_uri(choice: ModelChoice, staging: Path) -> str:
    """The MLflow model the UDF loads: the registry version, or a pyfunc saved around a
    bare model directory (the same ``StancePyfunc`` that `train` logs)."""
    if choice.pyfunc_uri is not None:
        return choice.pyfunc_uri
    import mlflow

    from pipeline.mlflow_model import MODEL_DIR_ARTIFACT, StancePyfunc

    path = staging / "pyfunc"
    mlflow.pyfunc.save_model(
        path=str(path),
        python_model=StancePyfunc(),
        artifacts={MODEL_DIR_ARTIFACT: str(choice.model_dir)},
        pip_requirements=["mlflow"],
    )
    return str(path)


def score_with_spark(
    items: Iterable[Document | Problem],
    out: Path,
    choice: ModelChoice,
    rejects: RejectLog,
    master: str = "local[*]",
    chunk_rows: int = 512,
    partitions: int | None = None,
) -> Summary:
    """Score the new documents of ``items`` on Spark and append them to the Parquet ``out``.

    ``chunk_rows`` is the CLI's: each UDF call gets the same rows as one predict call of
    the single-process run, so both give the same floats.
    """
    import time

    summary = rejects.summary
    started = time.monotonic()
    if out.suffix.lower() != ".parquet":
        raise OutputError(f"--out {out}: the Spark engine writes Parquet; use a .parquet name")
    out = out.resolve()
    existing = ParquetWriter(out, choice.info)  # the resume state and model check only
    quiet = Progress(total=None, every=float("inf"), tty=False)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.spark-", dir=out.parent))
    spark = None
    try:
        new = documents_to_score(items, existing.done, rejects, summary, quiet)
        summary.documents_scored = stage_documents(new, staging / "documents.parquet")
        if summary.documents_scored == 0:
            logger.info("no new documents to score")
            return summary
        slots = local_slots(master) or available_cores()
        partitions = partitions or max(1, min(summary.documents_scored, 2 * slots))
        spark = spark_session(master, partitions)
        summary.sentences, summary.rows = run_jobs(
            spark, staging, out, choice, partitions, chunk_rows
        )
    finally:
        if spark is not None:
            spark.stop()
        shutil.rmtree(staging, ignore_errors=True)
        summary.seconds = time.monotonic() - started
    return summary


def run_jobs(
    spark, staging: Path, out: Path, choice: ModelChoice, partitions: int, chunk_rows: int
) -> tuple[int, int]:
    """The two Spark jobs; (content sentences, rows written).

    Rows are numbered in the CLI's order (documents as read, then row order within each)
    and cut into ``chunk_rows`` slices; each partition holds whole slices in order and
    Arrow batches are ``chunk_rows`` long, so every UDF call is exactly one slice.
    """
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    sentences = spark.sparkContext.accumulator(0)
    candidates_path = str(staging / "candidates.parquet")
    documents = spark.read.parquet(str(staging / "documents.parquet")).repartition(partitions)
    documents.mapInPandas(
        functools.partial(candidate_frames, sentences=sentences),
        schema=spark_ddl(CANDIDATE_COLUMNS) + ", doc_seq bigint, row_in_doc bigint",
    ).write.parquet(candidates_path)

    rows = spark.read.parquet(candidates_path)
    per_document = sorted(
        (r["doc_seq"], r["count"]) for r in rows.groupBy("doc_seq").count().collect()
    )
    offsets, total = [], 0
    for doc_seq, count in per_document:
        offsets.append((doc_seq, total))
        total += count
    if total == 0:
        return sentences.value, 0
    offset_frame = spark.createDataFrame(offsets, "doc_seq bigint, row_offset bigint")
    numbered = (
        rows.join(F.broadcast(offset_frame), "doc_seq")
        .withColumn("global_row", F.col("row_offset") + F.col("row_in_doc"))
        .withColumn("slice", F.floor(F.col("global_row") / chunk_rows))
        .repartition(partitions, "slice")
        .sortWithinPartitions("global_row")
    )
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(chunk_rows))
    predict = mlflow.pyfunc.spark_udf(
        spark,
        pyfunc_uri(choice, staging),
        result_type=spark_ddl(OUTPUT_COLUMNS),
        env_manager="local",
    )
    model_columns = [
        F.lit(value).cast("string").alias(name) for name, value in choice.info.columns().items()
    ]
    numbered.withColumn("_prediction", predict(F.struct("sentence", "actor"))).select(
        *CANDIDATE_COLUMNS,
        *(F.col(f"_prediction.{name}").alias(name) for name in OUTPUT_COLUMNS),
        *model_columns,
    ).write.mode("append").parquet(str(out))
    return sentences.value, total
