"""reasoner batch under faults: nothing lost, nothing mixed, nothing half-written.

Each test runs the real command in a subprocess and interferes with it (kill -9, SIGINT, SIGTERM,
a second writer), then checks what is left at the output path: the previous file or nothing, never
a partial file that looks complete.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasoner.cli import EXIT_INPUT, EXIT_OUTPUT, EXIT_USAGE

CLI = [sys.executable, "-m", "reasoner.cli"]  # batch runs below decide one payer: one output row per patient
ROW = {"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "age": 50}


def _rows(path: Path, n: int, prefix: str = "p") -> Path:
    with path.open("w") as handle:
        for i in range(n):
            handle.write(json.dumps({"id": f"{prefix}{i}", **ROW, "age": 20 + i % 60}) + "\n")
    return path


def _start(*args) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "batch", "--payer", "uhc", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_partial(out: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until the run has written part of its output (a non-empty partial file beside the target)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        partial = [p for p in out.parent.glob(f".{out.name}.*.partial") if p.stat().st_size > 0]
        if partial:
            return
        assert proc.poll() is None, "the run ended before it could be interrupted; use a larger input"
        time.sleep(0.02)
    raise AssertionError("no partial output appeared")


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    return _rows(tmp_path_factory.mktemp("big") / "in.jsonl", 400_000)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_leaves_the_previous_file(tmp_path, big, fmt, how):
    out = tmp_path / f"out.{fmt}"
    out.write_bytes(b"previous run\n")
    proc = _start(big, "--out", out, "--chunk", "2000")
    _wait_for_partial(out, proc)
    proc.send_signal(how)
    _, err = proc.communicate(timeout=60)
    assert out.read_bytes() == b"previous run\n"
    if how != signal.SIGKILL:
        assert proc.returncode == 128 + how, err.decode()
        assert b"Traceback" not in err
        assert not list(tmp_path.glob(".*.partial")), "a partial file was left behind"


@pytest.mark.slow
def test_a_killed_run_leaves_no_file_where_there_was_none_and_the_next_run_cleans_up(tmp_path, big):
    out = tmp_path / "out.jsonl"
    proc = _start(big, "--out", out, "--chunk", "2000")
    _wait_for_partial(out, proc)
    proc.kill()
    proc.wait()
    assert not out.exists()
    small = _rows(tmp_path / "small.jsonl", 10)
    done = subprocess.run([*CLI, "batch", "--payer", "uhc", str(small), "--out", str(out)], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert len(out.read_text().splitlines()) == 10
    assert not list(tmp_path.glob(".out.jsonl.*")), "stale partial or lock files remain"


@pytest.mark.slow
def test_a_second_writer_is_refused_while_the_first_runs(tmp_path):
    """The first run reads a pipe the test holds open: it is still running, whatever the
    machine's speed, when the second starts; then it gets the rest of its rows and ends."""
    out, pipe = tmp_path / "out.jsonl", tmp_path / "first.jsonl"
    os.mkfifo(pipe)
    first = _start(pipe, "--out", out)
    rows = _rows(tmp_path / "rows.jsonl", 60_000).read_bytes().splitlines(keepends=True)
    with pipe.open("wb") as feed:
        feed.writelines(rows[:50_000])  # output lags a chunk or two behind what has been read
        feed.flush()
        _wait_for_partial(out, first)
        other = _rows(tmp_path / "q.jsonl", 50, prefix="q")
        second = subprocess.run([*CLI, "batch", "--payer", "uhc", str(other), "--out", str(out)], capture_output=True)
        assert second.returncode == EXIT_OUTPUT and b"another run is writing this file" in second.stderr
        feed.writelines(rows[50_000:])
    first.communicate(timeout=300)
    assert first.returncode == 0
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(ids) == 60_000 and all(i.startswith("p") for i in ids)


def test_out_equal_to_the_input_is_refused_and_the_input_kept(tmp_path):
    source = _rows(tmp_path / "in.jsonl", 5)
    before = source.read_bytes()
    done = subprocess.run([*CLI, "batch", "--payer", "uhc", str(source), "--out", str(source)], capture_output=True)
    assert done.returncode == EXIT_USAGE and b"is the input file" in done.stderr
    assert source.read_bytes() == before


def test_a_refused_run_keeps_an_existing_output(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    (tmp_path / "in.txt").write_text("{}\n")
    done = subprocess.run([*CLI, "batch", "--payer", "uhc", str(tmp_path / "in.txt"), "--out", str(out)], capture_output=True)
    assert done.returncode in (EXIT_USAGE, EXIT_INPUT) and out.read_text() == "precious\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**ROW, "age": 500}) + "\n")
    done = subprocess.run([*CLI, "batch", "--payer", "uhc", str(bad), "--out", str(out), "--on-error", "reject"], capture_output=True)
    assert done.returncode == EXIT_INPUT and out.read_text() == "precious\n"
    assert b"is unchanged" in done.stderr


def test_reject_mode_to_stdout_prints_no_rows_when_rejected(tmp_path):
    source = _rows(tmp_path / "in.jsonl", 20)
    with source.open("a") as handle:
        handle.write(json.dumps({**ROW, "age": -4}) + "\n")
    done = subprocess.run([*CLI, "batch", "--payer", "uhc", str(source), "--on-error", "reject"], capture_output=True)
    assert done.returncode == EXIT_INPUT and done.stdout == b""


@pytest.mark.parametrize("where", ["missing/out.jsonl", "."])
def test_unwritable_targets_are_clear_errors(tmp_path, where):
    source = _rows(tmp_path / "in.jsonl", 3)
    done = subprocess.run([*CLI, "batch", "--payer", "uhc", str(source), "--out", str(tmp_path / where)], capture_output=True)
    assert done.returncode == EXIT_USAGE and b"Traceback" not in done.stderr
    assert not (tmp_path / "missing").exists()


def test_a_full_disk_is_a_clear_error(tmp_path):
    source = _rows(tmp_path / "in.jsonl", 3)
    done = subprocess.run([*CLI, "batch", "--payer", "uhc", str(source), "--out", "/dev/full", "--format", "jsonl"], capture_output=True)
    assert done.returncode == EXIT_OUTPUT and b"No space left" in done.stderr and b"Traceback" not in done.stderr


def test_rows_that_used_to_crash_are_row_errors_and_every_good_row_is_decided_once(tmp_path):
    good = [json.dumps({"id": f"g{i}", **ROW}).encode() for i in range(30)]
    crashers = [
        b'{"id": "big", "age": ' + b"9" * 5000 + b"}",  # more digits than Python converts
        b'{"id": "deep", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"id": "bytes\xff\xfe"}',  # not UTF-8
        b'{"id": "\\ud800", "service": "implant"}',  # a lone surrogate
        b'{"id": "twice", "age": 40, "age": 41}',
    ]
    lines = good[:10] + crashers[:2] + good[10:20] + crashers[2:] + good[20:]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    done = subprocess.run([*CLI, "batch", "--payer", "uhc", str(source), "--out", str(out), "--chunk", "7"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted(f"g{i}" for i in range(30))
    for number in (11, 12, 23, 24, 25):
        assert f"{source}:{number}".encode() in done.stderr


@pytest.mark.parametrize("where, code", [("/proc/x.jsonl", EXIT_OUTPUT), ("TMP/" + "b" * 300 + ".jsonl", None)])
def test_an_output_path_the_system_refuses_is_said_plainly(tmp_path, where, code):
    """/proc cannot hold a file, and a name longer than the file system allows cannot exist: a
    one-line error naming the path (exit 4 where the run knows it is the output), never a traceback."""
    source = _rows(tmp_path / "in.jsonl", 3)
    out = where.replace("TMP", str(tmp_path))
    done = subprocess.run([*CLI, "batch", "--payer", "uhc", str(source), "--out", out], capture_output=True, text=True)
    assert "Traceback" not in done.stderr and done.returncode in ((code,) if code else (EXIT_INPUT, EXIT_OUTPUT, EXIT_USAGE))
    assert out[:40] in done.stderr and len(done.stderr.strip().splitlines()) <= 2


def test_csv_numbers_are_plain_decimals(tmp_path):
    """Python's float() reads 5_4 and 054 as 54; a CSV cell is read as patient files are (plain
    decimal), so those rows are reported, not decided as age 54."""
    source = tmp_path / "in.csv"
    source.write_text("id,service,line_of_business,indications,age\n"
                      "a,implant,commercial,nonmalignant_pain,5_4\nb,implant,commercial,nonmalignant_pain,054\n"
                      "c,implant,commercial,nonmalignant_pain,54\n")
    done = subprocess.run([*CLI, "batch", "--payer", "uhc", str(source)], capture_output=True, text=True)
    assert "got '5_4'" in done.stderr and "got '054'" in done.stderr
    assert [json.loads(line)["id"] for line in done.stdout.splitlines()] == ["c"]


def test_a_reader_that_goes_away_ends_the_run_as_sigpipe_would_and_says_so(tmp_path):
    """`reasoner batch big.jsonl | head -1`: exit 141 (128 + SIGPIPE) as other tools, with one line on
    stderr saying the rows are incomplete; click alone made it a silent exit 1 (robustness L5)."""
    proc = _start(_rows(tmp_path / "in.jsonl", 20_000))
    assert json.loads(proc.stdout.readline())["id"] == "p0"
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "standard output was closed by its reader" in err and "Traceback" not in err


def test_a_pipe_as_input_is_read_once_and_every_row_decided(tmp_path):
    """A FIFO (`batch <(zcat x.jsonl.gz)`) can be read only once: the run counts no total first
    (that read had drained the pipe, and the run then waited forever; robustness L7)."""
    import os
    import threading

    source = _rows(tmp_path / "rows.jsonl", 300)
    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)
    feeder = threading.Thread(target=lambda: fifo.write_bytes(source.read_bytes()), daemon=True)
    feeder.start()
    done = subprocess.run([*CLI, "batch", "--payer", "uhc", str(fifo), "--out", str(tmp_path / "o.jsonl")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(line)["id"] for line in (tmp_path / "o.jsonl").read_text().splitlines()) == \
        sorted(f"p{i}" for i in range(300))
