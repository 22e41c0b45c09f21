"""Output files that are either complete or absent.

A run writes into a hidden temporary file beside the target and renames it over the target only once
everything has been written (`os.replace` is atomic within one file system). A crash, `kill -9` or
Ctrl-C therefore leaves the previous file (or none) at the target, never a partial one that looks
complete. A lock file beside the target makes a second run that writes to the same path stop at
once instead of mixing its rows into the first one's; the target may never be one of the inputs;
and a run that is refused before it writes anything never touches an existing target.

Targets that exist and are not regular files (`/dev/stdout`, a FIFO) cannot be replaced by a rename;
they are written directly, and write errors are still reported cleanly (a FIFO waits for its
reader, as it does for any program that writes to it).
"""
from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from reasoner.errors import OutputError, Problem

PARTIAL = ".partial"


def _problem(path: Path, message: str) -> OutputError:
    return OutputError([Problem(str(path), message)])


def check_target(target: Path, inputs: list[Path]) -> None:
    """Refuse, before anything is read or written, a target that cannot or must not be written."""
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise _problem(target, "is a folder; give a file name for --out.")
    if not folder.is_dir():
        raise _problem(target, f"the folder '{folder}' does not exist; nothing was read or written.")
    for source in inputs:
        if target.exists() and source.exists() and os.path.samefile(target, source):
            raise _problem(target, f"--out is the input file '{source}'; writing it would destroy the input. "
                                   "Choose another output file.")
    if target.exists() and target.is_file() and not os.access(target, os.W_OK):
        raise _problem(target, "is not writable.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _problem(target, f"the folder '{folder}' is not writable.")


class _Lock:
    """An exclusive, non-blocking lock on `.<name>.lock` beside the target."""

    def __init__(self, target: Path):
        self.path = target.parent / f".{target.name}.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:  # /proc, /sys, a name too long: no file can be written there
                raise _problem(self.path.parent / self.path.name[1:-5],
                               f"cannot be written ({err.strerror}).") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise _problem(self.path.parent / self.path.name[1:-5],
                                   "another run is writing this file right now; wait for it to finish "
                                   "or choose another --out.") from None
                raise
            try:  # the lock file may have been removed and re-created between open and flock
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    self.fd = fd
                    return
            except FileNotFoundError:
                pass
            os.close(fd)

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = None


def _remove_stale(target: Path) -> None:
    """Partial files left by runs that were killed (their process no longer exists)."""
    for stale in target.parent.glob(f".{target.name}.*{PARTIAL}"):
        pid = stale.name[len(target.name) + 2:-len(PARTIAL)].split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def atomic_output(target: Path, inputs: list[Path], binary: bool = True) -> Iterator[IO]:
    """A file object to write the whole output into; on success it replaces `target` at once.

    On any exception (KeyboardInterrupt included) the partial file is removed and `target` is left
    as it was; OSError while writing becomes an OutputError naming the target."""
    target = Path(target)
    check_target(target, inputs)
    if target.exists() and not target.is_file():  # a device or FIFO: no rename possible
        try:
            with open(target, "wb" if binary else "w", encoding=None if binary else "utf-8") as handle:
                yield handle
        except OSError as err:
            raise _problem(target, f"could not be written: {err.strerror or err}.") from None
        return
    lock = _Lock(target)
    lock.acquire()
    partial = None
    try:
        _remove_stale(target)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=PARTIAL, dir=target.parent)
        partial = Path(name)
        try:
            with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as err:
            raise _problem(target, f"could not be written: {err.strerror or err}; the previous file, if any, "
                                   "is unchanged.") from None
        if target.exists():
            os.chmod(partial, target.stat().st_mode & 0o777)
        else:
            os.chmod(partial, 0o666 & ~_umask())
        os.replace(partial, target)
        partial = None
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
        lock.release()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
