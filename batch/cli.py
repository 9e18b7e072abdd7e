"""`stance-watch`: score news corpora with the stance model and follow stances day by day.

    stance-watch score INPUT... --out OUT       (.jsonl, .csv or .parquet)
    stance-watch timeseries SCORED --out DIR   (daily.csv, stance_index.png, report.html)

Run from the project root: the model registry is the pipeline's tracking store
(./mlflow.db unless MLFLOW_TRACKING_URI is set) and the registered model's name is
params.yaml's ``mlflow.registered_model``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger("stance-watch")

ENGINES = ("python", "spark")
EXIT_ERROR, EXIT_STRICT, EXIT_INTERRUPTED = 1, 2, 130


class CliError(Exception):
    """A problem the user can fix; printed as ``stance-watch: error: <message>``."""


def iso_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {value!r}") from None


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stance-watch",
        description="Score news corpora with the actor-stance model and follow stances day by day.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    score = commands.add_parser(
        "score",
        help="score dated articles: one row per (document, sentence, actor)",
        description=(
            "Score dated articles with the stance model: each document is split into "
            "sentences, the actors each sentence names are detected, and each "
            "(sentence, actor) pair is scored (the same path as the service's /score). "
            "INPUT is a .jsonl or .csv file (fields id, date, text or path, and optional "
            "source, url, title) or a folder of .txt files (id = file name; date = its "
            "YYYY-MM-DD prefix, or --date). Rerunning with the same --out resumes: "
            "documents already in OUT are skipped. Bad records are reported as "
            "file:line: reason, written to <OUT stem>.rejects.txt and counted."
        ),
    )
    score.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    score.add_argument(
        "--out", type=Path, required=True,
        help="output file: .jsonl, .csv, or .parquet (a folder of Parquet parts)",
    )  # fmt: skip
    score.add_argument(
        "--model",
        help="registry alias (default: champion) or version number, models:/NAME@ALIAS or "
        "models:/NAME/VERSION, or a local model directory",
    )
    score.add_argument(
        "--registered-model",
        help="registered model name for --model aliases and versions "
        "(default: params.yaml mlflow.registered_model)",
    )
    score.add_argument(
        "--date", type=iso_date, help="YYYY-MM-DD date for documents that carry none"
    )
    score.add_argument(
        "--strict", action="store_true", help="stop at the first bad record (exit code 2)"
    )
    score.add_argument(
        "--engine", choices=ENGINES, default="python",
        help="python: this process (default); spark: mlflow.pyfunc.spark_udf on Spark "
        "(needs the [spark] extra, writes .parquet)",
    )  # fmt: skip
    score.add_argument("--spark-master", default="local[*]", help="Spark master for --engine spark")
    score.add_argument(
        "--batch-size", type=positive_int, default=32, help="rows per forward pass (32)"
    )
    score.add_argument(
        "--chunk-rows", type=positive_int, default=512,
        help="rows per predict call (512); Spark's UDF gets the same slices; memory grows "
        "with it",
    )  # fmt: skip
    score.add_argument(
        "--log-every", type=float, default=10.0,
        help="seconds between progress lines when stderr is not a terminal (10)",
    )  # fmt: skip
    score.set_defaults(run=run_score)

    series = commands.add_parser(
        "timeseries",
        help="daily actor-stance series, plot and report page from a scored file",
        description=(
            "Turn a scored file (the output of `stance-watch score`: .jsonl, .csv or "
            ".parquet) into DIR/daily.csv (per day and actor: rows, stance counts, mean "
            "scores, stance index = share supportive - share hostile, hedging share, and "
            "their 7-day rolling values), DIR/stance_index.png and a self-contained "
            "DIR/report.html."
        ),
    )
    series.add_argument("scored", type=Path, metavar="SCORED")
    series.add_argument("--out", type=Path, required=True, help="output folder")
    series.add_argument(
        "--examples", type=positive_int, default=3,
        help="example sentences per actor and stance in the report (3)",
    )  # fmt: skip
    series.add_argument(
        "--moves", type=positive_int, default=10, help="largest day-to-day moves listed (10)"
    )
    series.set_defaults(run=run_timeseries)
    return parser


def registered_model_name(option: str | None) -> str | None:
    if option:
        return option
    from pipeline import tracking
    from pipeline.config import PARAMS_FILE, load_section

    if PARAMS_FILE.is_file():
        return load_section("mlflow", tracking.MlflowParams).registered_model
    return None


def run_score(args: argparse.Namespace) -> int:
    from batch.inputs import check_inputs, count_documents, read_inputs
    from batch.models import resolve_model
    from batch.outputs import open_writer, output_format, rejects_path
    from batch.score import Progress, RejectLog, Summary, score_stream

    inputs = check_inputs(args.inputs)
    output_format(args.out)
    if args.engine == "spark" and args.out.suffix.lower() != ".parquet":
        raise CliError(f"--out {args.out}: the Spark engine writes Parquet; use a .parquet name")
    registered = registered_model_name(args.registered_model)
    summary = Summary()
    items = read_inputs(inputs, args.date)
    with tempfile.TemporaryDirectory(prefix="stance-watch-model-") as cache:
        choice = resolve_model(args.model, registered, Path(cache))
        info = choice.info
        logger.info("model: %s version %s (run %s)", info.name, info.version, info.run_id)
        rejects = RejectLog(rejects_path(args.out), summary, args.strict)
        try:
            if args.engine == "spark":
                from batch.spark import score_with_spark

                if args.batch_size != 32:
                    logger.warning("--batch-size is not used by Spark: the model UDF uses 32")
                score_with_spark(
                    items, args.out, choice, rejects, args.spark_master, args.chunk_rows
                )
            else:
                from pipeline.inference import StancePredictor
                from pipeline.labels import STANCES

                predictor = StancePredictor(choice.model_dir)
                if sorted(predictor.labels) != sorted(STANCES):
                    raise CliError(f"the model predicts {predictor.labels}, not {list(STANCES)}")
                writer = open_writer(args.out, choice.info)
                progress = Progress(count_documents(inputs), args.log_every)
                try:
                    score_stream(
                        items, predictor, writer, choice.info.columns(), rejects, progress,
                        args.batch_size, args.chunk_rows,
                    )  # fmt: skip
                finally:
                    progress.close()
                    writer.close()
        finally:
            rejects.close()
            logger.info("%s", summary.line())
    if summary.rejected:
        logger.warning("%d rejected record(s): see %s", summary.rejected, rejects.path)
    logger.info("wrote %s", args.out)
    return 0


def run_timeseries(args: argparse.Namespace) -> int:
    from batch.report import write_report

    written = write_report(args.scored, args.out, examples=args.examples, moves=args.moves)
    for path in written:
        logger.info("wrote %s", path)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("mlflow", "py4j", "urllib3", "alembic", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    from batch.inputs import InputError
    from batch.models import ModelError
    from batch.outputs import OutputError
    from batch.score import StrictStop
    from batch.spark import SparkUnavailable
    from pipeline.config import ConfigError

    try:
        return args.run(args)
    except StrictStop as stop:
        print(f"stance-watch: stopped (--strict): {stop}", file=sys.stderr)
        return EXIT_STRICT
    except (CliError, ConfigError, InputError, ModelError, OutputError, SparkUnavailable) as error:
        print(f"stance-watch: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("stance-watch: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
