"""Writing files so that neither a crash nor a full disk leaves half of one (framework-free).

Every output of every command goes through :func:`atomic_write`: the bytes go to a temporary
file beside the target, which is renamed over the target only once complete. A write that
fails (no space left, permission denied, read-only file system, a file-size limit) becomes a
one-line :class:`WriteError` naming the file and the cause; the temporary file is removed and
the previous file, if any, is left as it was. ``signs.cli.run_main`` turns it into exit status 3.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from signs.errors import InputError

# The causes users meet, in words (anything else: the system's own message).
CAUSES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large (a file-size limit, see ulimit -f)",
    errno.EEXIST: "a parent path is a file, not a directory",
    errno.ENOTDIR: "a parent path is a file, not a directory",
    errno.EISDIR: "it is a directory",
    errno.EIO: "input/output error",
}


class WriteError(InputError):
    """A file could not be written. ``path``: the file; ``cause``: why, in words.

    The message is one line: the file, the cause, and that the previous file is unchanged.
    """

    def __init__(self, path, cause: str, detail: str = ""):
        self.path, self.cause, self.detail = Path(path), cause, detail
        super().__init__(f"cannot write {path}: {cause}{detail}")

    def adding(self, more: str) -> WriteError:
        """The same error with ``more`` appended to its line (what the run did about it)."""
        return WriteError(self.path, self.cause, self.detail + more)


def cause_of(exc: OSError) -> str:
    """The cause of a failed write, in words (``"no space left on device"``, ...)."""
    if exc.errno in CAUSES:
        return CAUSES[exc.errno]
    if exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash at any moment leaves either the old file or the new one, never half of one. An
    ``OSError`` while creating the directory, writing, syncing or renaming raises
    :class:`WriteError` (after removing the temporary file; the old file is untouched).
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except OSError as exc:
        kept = "; the previous file is unchanged" if path.is_file() else ""
        raise WriteError(path, cause_of(exc), kept) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
