"""The fast backend's SQL on Apache Spark, for populations that outgrow one machine.

Nothing is compiled twice: `engines/sql.py` writes one portable query (CASE, COALESCE, IN,
comparisons, CAST, concat_ws) over the wide patient table, and this module hands that same text to
Spark SQL instead of DuckDB. `tests/test_spark.py` holds Spark equal to DuckDB (deciding rule,
decision and failing criteria per payer) on generated patients.

Use it three ways:
- `reasoner batch FILE --engine spark`: rows are read and checked as always (DuckDB), and each
  chunk is decided by a local Spark session;
- from Python, with a session you already have (a cluster): `SparkBackend(program, vocab, spark)`
  and `decide_dataframe(df)` on a DataFrame laid out as `layout_schema()`;
- `spark-submit -m reasoner.engines.spark_job IN.parquet OUT.parquet` (see docs/SPARK.md).

PySpark is an optional extra (`pip install -e '.[spark]'`, and a Java runtime): imported only
here, and only when asked for.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq

from reasoner.engines.duck import ARROW
from reasoner.engines.sql import compile_query, layout
from reasoner.errors import InputError, Problem
from reasoner.language import ir
from reasoner.language.vocab import Vocabulary

VIEW = "patients"
LOG_CONFIG = os.path.join(os.path.dirname(__file__), "spark-log4j2.properties")


def _pyspark():
    try:
        import pyspark  # noqa: F401
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError([Problem("--engine spark", "PySpark is not installed; install the extra with "
                                                    "pip install -e '.[spark]' (it also needs a Java runtime).")]) from None
    return SparkSession


def local_session(threads: int = 2):
    """A small local session: few shuffle partitions (one query, no joins), no web UI, quiet logs."""
    session = _pyspark()
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise InputError([Problem("--engine spark", "Spark needs a Java runtime (17 or later) and none was found on "
                                                    "PATH or in JAVA_HOME; install one (e.g. apt-get install "
                                                    "default-jre-headless).")])
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # a local session listens on this machine only
    quiet = f"-Dlog4j2.configurationFile={LOG_CONFIG}"
    try:
        spark = (session.builder.master(f"local[{threads}]").appName("reasoner")
                 .config("spark.driver.extraJavaOptions", quiet)
                 .config("spark.ui.enabled", "false")
                 .config("spark.sql.shuffle.partitions", str(threads))
                 .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                 .config("spark.driver.memory", "2g")
                 .config("spark.ui.showConsoleProgress", "false")
                 .getOrCreate())
    except Exception as err:  # PySpark reports a JVM that will not start in several exception types
        raise InputError([Problem("--engine spark", f"a local Spark session did not start: {_first_line(err)}")]) from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


class SparkBackend:
    """Decides patients with the fast backend's query, run by Spark SQL."""

    def __init__(self, program: ir.Program, vocab: Vocabulary, session=None, keep: tuple[str, ...] = ()):
        self.program, self.vocab = program, vocab
        self.layout = layout(program, vocab)
        self.query = compile_query(program, vocab, self.layout, VIEW, keep)
        self.owned = session is None
        self.spark = session or local_session()

    def close(self) -> None:
        """Stop the session if this backend started it (a session passed in is the caller's)."""
        if self.owned:
            self.spark.stop()

    def layout_schema(self) -> pa.Schema:
        """The patient table the query reads: pid, then one column per concept (or set member)."""
        return pa.schema([("pid", pa.int64())] + [(c.name, ARROW[c.sql_type]) for c in self.layout.columns])

    def decide_dataframe(self, df):
        """A Spark DataFrame of decisions (pid, <payer>__rule, __decision, __failing per payer)."""
        df.createOrReplaceTempView(VIEW)
        return self.spark.sql(self.query)

    def run_arrow(self, patients: pa.Table) -> pa.Table:
        """Same columns and types as FastBackend.run_arrow, for one chunk (local use).

        The chunk goes to Spark as a Parquet file, not through `createDataFrame`: an in-memory
        table becomes a local relation that Spark evaluates row by row without generated code,
        which for this query measured about 80 ms a row (2,000 rows: 160 s, against 5 s from
        Parquet)."""
        with tempfile.TemporaryDirectory(prefix="reasoner-spark-") as folder:
            source = os.path.join(folder, "chunk.parquet")
            pq.write_table(patients, source)
            result = self.run_parquet(source).toArrow()
        return result.cast(pa.schema([(f.name, _plain(f.type)) for f in result.schema]))

    def run_parquet(self, source: str):
        """Decisions for a Parquet dataset laid out as `layout_schema()` (a lazy DataFrame)."""
        return self.decide_dataframe(self.spark.read.parquet(source))

    def decide_parquet(self, source: str, target: str) -> None:
        """Parquet in, Parquet out, both on storage the cluster reads (hdfs://, s3a://, a path)."""
        self.run_parquet(source).write.mode("overwrite").parquet(target)


def _plain(t: pa.DataType) -> pa.DataType:
    """Spark hands back large strings; DuckDB gives plain ones (the same values)."""
    return pa.string() if pa.types.is_large_string(t) else t
