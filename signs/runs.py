"""Guards for long runs (framework-free): stop signals and one run per output directory.

* :class:`StopRequest`: while it is active, SIGINT (Ctrl-C) and SIGTERM (``docker stop``, a
  batch scheduler's preemption, a shutdown) only set a flag that the training loop reads at
  the end of each epoch, so the run can save a checkpoint and stop cleanly. Further signals
  are acknowledged and ignored: they cannot interrupt the save.
* :func:`signals_interrupt`: SIGTERM raises :class:`Stopped` (a ``KeyboardInterrupt``), as
  SIGINT does by default, for commands with nothing to save; :func:`signs.cli.run_main`
  installs it for every command and turns the interruption into one line.
* :class:`OutputLock`: ``DIR/run.lock`` holds the pid, host and command of the run using
  ``DIR``; a second run refuses (:class:`DirectoryInUse`), a lock left by a run that died is
  taken over with a notice. The exclusion itself is an ``flock`` on that file, which the
  kernel releases when its process dies, so a stale lock can never block a run.

Exit statuses (see ``docs/errors.md``): ``128 + signal number`` after a stop signal (130 for
SIGINT, 143 for SIGTERM), 4 when the output directory is in use.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from signs.errors import InputError
from signs.files import WriteError, cause_of

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
LOCK_NAME = "run.lock"


def signal_name(signum: int) -> str:
    """``"SIGTERM"`` for 15 and so on."""
    return signal.Signals(signum).name


class Interrupted(Exception):
    """A run stopped on a signal, cleanly (its message says what was saved and how to resume).

    :func:`signs.cli.run_main` prints it as one line and exits with ``128 + signum``.
    """

    def __init__(self, message: str, signum: int = signal.SIGINT):
        self.signum = signum
        super().__init__(message)


class Stopped(KeyboardInterrupt):
    """Raised by :func:`signals_interrupt`'s handler: a stop signal, ``signum``, arrived."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal_name(signum))


class DirectoryInUse(InputError):
    """Another run holds the output directory's lock (exit status 4)."""


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _say(text: str) -> None:
    """Write a line to stderr from a signal handler (``os.write``: no buffered-stream reentry)."""
    with contextlib.suppress(OSError):
        os.write(2, f"\n{text}\n".encode())


@contextlib.contextmanager
def _handlers(handler, signals):
    """Install ``handler`` for ``signals`` in the block (main thread only), then restore.

    A signal the process was started ignoring (SIGINT for a shell's background job) stays
    ignored, as Python itself leaves it.
    """
    if not _in_main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signals
                if handler is signal.SIG_IGN or signal.getsignal(signum) != signal.SIG_IGN}
    try:
        yield
    finally:
        for signum, old in previous.items():
            if old is not None:  # None: a handler set outside Python, which cannot be put back
                signal.signal(signum, old)


class _Stopping:
    """The stop signal the process is acting on (``None``: none yet), shared by the handlers
    below so that a second signal never interrupts the first one's clean exit."""

    signum: int | None = None


@contextlib.contextmanager
def signals_interrupt():
    """SIGTERM raises :class:`Stopped` as SIGINT raises ``KeyboardInterrupt``; SIGXFSZ is ignored.

    For commands whose work is not worth a checkpoint (a benchmark, a parity report): stopping
    them with ``kill`` or ``docker stop`` gives the same one line as Ctrl-C (via
    :func:`signs.cli.run_main`) instead of an unexplained exit 143. Once a stop is under way
    (here or in a :class:`StopRequest`), further signals are ignored, so they cannot break
    the clean exit. SIGXFSZ is ignored so that a write past a file-size limit (``ulimit -f``)
    fails with an error the writer reports, instead of killing the process.
    """
    def stop(signum, frame):
        if _Stopping.signum is not None:
            _say(f"{signal_name(signum)}: already stopping")
            return
        _Stopping.signum = signum
        raise Stopped(signum)

    _Stopping.signum = None
    with _handlers(stop, STOP_SIGNALS), _handlers(signal.SIG_IGN, (signal.SIGXFSZ,)):
        yield


class StopRequest:
    """A context manager: SIGINT and SIGTERM set :attr:`signum` instead of stopping at once.

    The loop checks :attr:`requested` at a point where stopping is clean (the end of an
    epoch). ``notice``: what the first signal's message says will happen (change it as the
    run goes on). Later signals print that the run is already stopping and are ignored, so
    they cannot interrupt a checkpoint being written.
    """

    def __init__(self, notice: str = "finishing this epoch, then stopping"):
        self.notice = notice
        self.signum: int | None = None
        self._handlers = None

    @property
    def requested(self) -> bool:
        """Whether a stop signal arrived."""
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = _Stopping.signum = signum
            _say(f"{signal_name(signum)}: {self.notice}")
        else:
            _say(f"{signal_name(signum)}: already stopping ({self.notice}); "
                 "SIGKILL stops at once, without saving")

    def __enter__(self) -> StopRequest:
        self._handlers = _handlers(self._handle, STOP_SIGNALS)
        self._handlers.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._handlers.__exit__(*exc)


class OutputLock:
    """A context manager holding ``directory/run.lock`` for one run (created with the directory).

    Refuses with :class:`DirectoryInUse` when another run holds it; takes over, with a
    ``note:`` line on stderr, a lock left by a run that is no longer running. The file is
    removed when the run ends. ``command``: recorded for the message a second run prints.
    """

    def __init__(self, directory, command: str = ""):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fd, previous = self._acquire()
            if previous:
                print(f"note: {self.path}: taking over the lock of {_describe(previous)}, which is no "
                      "longer running (it stopped without cleaning up)", file=sys.stderr)
            record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                                 "started": datetime.datetime.now().isoformat(timespec="seconds")})
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, (record + "\n").encode(), 0)
        except OSError as exc:
            self._close()
            raise WriteError(self.path, cause_of(exc)) from None
        return self

    def _acquire(self) -> tuple[int, dict | None]:
        """Open and ``flock`` the lock file; return the descriptor and what the file held."""
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _parse(os.pread(fd, 4096, 0))
                os.close(fd)
                who = _describe(holder) if holder else "another run"
                raise DirectoryInUse(f"{self.directory} is in use by {who} (lock {self.path}); wait "
                                     "for it to end or pass another --out") from None
            except OSError as exc:  # a file system without locks (some network or FUSE mounts)
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    os.close(fd)
                    raise
                print(f"note: {self.path}: this file system cannot lock files ({cause_of(exc)}); "
                      "nothing stops a second run from using this directory", file=sys.stderr)
                return fd, None
            # A run that ends removes the file before unlocking it: make sure ours is still there.
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    return fd, _parse(os.pread(fd, 4096, 0))
            os.close(fd)

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # still holding the flock: no one else has it
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None


def _parse(data: bytes) -> dict | None:
    """The lock file's record (``None`` if empty or unreadable)."""
    try:
        record = json.loads(data.decode())
    except ValueError:
        return {"pid": "?", "host": "?"} if data.strip() else None
    return record if isinstance(record, dict) else None


def _describe(record: dict) -> str:
    """``pid 123 on host h (since T: command)``."""
    text = f"pid {record.get('pid', '?')} on host {record.get('host', '?')}"
    if record.get("started"):
        text += f" (since {record['started']}"
        text += f": {record['command']})" if record.get("command") else ")"
    return text
