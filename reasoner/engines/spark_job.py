"""A Spark job: decide a Parquet dataset of patients laid out for the fast backend, on a cluster.

    spark-submit "$(python -c 'import reasoner.engines.spark_job as j; print(j.__file__)')" \\
        s3a://bucket/patients/ s3a://bucket/decisions/ [--policies DIR] [--payer ID ...]
    python -m reasoner.engines.spark_job --schema      # the columns the input must have

Only the driver needs `reasoner` installed: the decision is one Spark SQL query (no Python UDFs),
so executors run it as they run any SQL. The session is the one spark-submit configures
(`getOrCreate`); nothing here sets a master. See docs/SPARK.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reasoner.errors import InputError
from reasoner.language.load import load


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="reasoner.engines.spark_job", description=__doc__.split("\n")[0])
    ap.add_argument("source", nargs="?", help="Parquet input laid out as --schema prints")
    ap.add_argument("target", nargs="?", help="Parquet output (replaced): pid, then <payer>__rule, __decision, __failing")
    ap.add_argument("--policies", type=Path, default=None, help="policy folder (default: the bundled policies)")
    ap.add_argument("--payer", action="append", default=None, help="only these payers (repeatable)")
    ap.add_argument("--schema", action="store_true", help="print the input columns and their types, then stop")
    args = ap.parse_args(argv)
    if not args.schema and not (args.source and args.target):
        ap.error("give SOURCE and TARGET, or --schema")
    return args


def main(argv: list[str] | None = None) -> int:
    from reasoner.engines.spark import SparkBackend

    args = _arguments(argv)
    try:
        loaded = load(args.policies) if args.policies else load()
    except InputError as error:
        print("\n".join(f"{p.where}: {p.message}" for p in error.problems), file=sys.stderr)
        return 1
    program = loaded.program
    if args.payer:
        unknown = sorted(set(args.payer) - {p.id for p in program.policies})
        if unknown:
            print(f"--payer: unknown payer(s) {', '.join(unknown)}", file=sys.stderr)
            return 2
        program = program.only(args.payer)
    if args.schema:
        from reasoner.engines.sql import layout
        from reasoner.engines.duck import ARROW

        print("pid: BIGINT (any integer key; carried to the output)")
        for c in layout(program, loaded.vocab).columns:
            print(f"{c.name}: {c.sql_type} ({ARROW[c.sql_type]})")
        return 0
    from pyspark.sql import SparkSession

    backend = SparkBackend(program, loaded.vocab, SparkSession.builder.appName("reasoner").getOrCreate())
    backend.decide_parquet(args.source, args.target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
