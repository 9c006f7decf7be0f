"""Writes that fail (a full disk, a file-size limit, permissions): one line, exit 3, nothing lost.

* ``signs.files.atomic_write``: an ``OSError`` while writing, syncing or renaming becomes a
  ``WriteError`` naming the file and the cause in words; the temporary file is removed and the
  previous file is left as it was.
* ``python -m torch_port.train``: a checkpoint that cannot be written, at the first and at a
  later save, stops the run with that line (exit 3) or, with ``--on-write-error continue``,
  warns and trains on. Two real subprocesses meet a real kernel limit (``RLIMIT_FSIZE``: the
  write fails with EFBIG), one from the start, one after its first checkpoint; the others
  simulate a full disk (ENOSPC) in-process by making the checkpoint's bytes fail half-way.
* The other writers go through the same function: ``python -m parity report --json``,
  ``python -m benchmarks --json``, ``python -m tf_original.train --save-weights``.

The tests need no root: the failures are a file-size limit, a file standing where a directory
must be, or a write made to fail (running as root, permissions would not stop a write).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from signs_testing import HAS_TF, NO_TF_REASON, Background, make_data_dir

torch = pytest.importorskip("torch")

from signs import files  # noqa: E402
from signs.cli import EXIT_WRITE_FAILED, run_main  # noqa: E402
from signs.files import WriteError, atomic_write  # noqa: E402
from torch_port import checkpoint as ckpt  # noqa: E402
from torch_port import train as torch_train  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

EPOCHS = 4
# The child of the RLIMIT_FSIZE runs: a 1 MiB limit on any file it writes (a checkpoint is
# 3.7 MB), from the start or from just after its first checkpoint. It does not touch SIGXFSZ:
# the CLI itself must ignore it, or the kernel's SIGXFSZ would kill it.
LIMITED_CHILD = """
import resource, runpy, sys
from torch_port import checkpoint

def limit():
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

when, sys.argv = sys.argv[1], ["torch_port.train", *sys.argv[2:]]
if when == "start":
    limit()
else:
    save = checkpoint.save_checkpoint
    def save_then_limit(*args, **kwargs):
        path = save(*args, **kwargs)
        limit()
        return path
    checkpoint.save_checkpoint = save_then_limit
runpy.run_module("torch_port.train", run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_data_dir(tmp_path_factory.mktemp("write-failures-data"))


def _argv(out, *extra):
    return [str(a) for a in ["--epochs", EPOCHS, "--out", out, "--quiet", *extra]]


def one_error_line(status, stderr, expected_status=EXIT_WRITE_FAILED) -> str:
    """``expected_status``, no traceback, one ``error:`` line, the last (``note:``/``warning:``
    lines aside)."""
    assert status == expected_status, f"exit status {status}, stderr:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("note: ")]
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], stderr
    return lines[-1]


def no_temporary_files(directory: Path) -> bool:
    return not [p for p in directory.rglob("*") if p.name.endswith(".tmp")]


def failing_bytes(cause: int = errno.ENOSPC, after: int = 4096):
    """A ``write`` for ``atomic_write`` that writes ``after`` bytes, then fails with ``cause``."""
    def write(handle):
        handle.write(b"x" * after)
        raise OSError(cause, os.strerror(cause))
    return write


@pytest.fixture(scope="module", autouse=True)
def started(tmp_path_factory, data_dir):
    """The two RLIMIT_FSIZE subprocesses, started together with the module's first test."""
    root = tmp_path_factory.mktemp("limited")
    runs = {}
    for when in ("start", "after-first"):
        out = root / when / "out"
        out.mkdir(parents=True)
        if when == "start":  # a previous run's checkpoint, which must survive
            _previous_checkpoint(out)
        runs[when] = (Background(["-c", LIMITED_CHILD, when, *_argv(out, "--data-dir", data_dir,
                                                               "--checkpoint-every", "1")],
                                 root / when), out)
    yield runs
    for run, _ in runs.values():
        run.stop()


def _previous_checkpoint(out: Path) -> bytes:
    """Write a genuine checkpoint into ``out`` (epoch 1 of a run with this module's settings)."""
    from signs.weights import load_initial_parameters
    from torch_port.optim import make_optimizer

    params = {k: torch.tensor(v, requires_grad=True) for k, v in load_initial_parameters("float32").items()}
    ckpt.save_checkpoint(ckpt.default_checkpoint(out), epoch=1, optimizer=make_optimizer(
        "tf-adam", list(params.values()), 1e-4), costs=[1.8], settings={"num_epochs": EPOCHS},
        parameters={k: v.detach() for k, v in params.items()})
    return ckpt.default_checkpoint(out).read_bytes()


# --------------------------------------------------------------------------- atomic_write


@pytest.mark.parametrize("cause, words", [(errno.ENOSPC, "no space left on device"),
                                          (errno.EDQUOT, "disk quota exceeded"),
                                          (errno.EFBIG, "file too large (a file-size limit, see ulimit -f)"),
                                          (errno.EIO, "input/output error")])
def test_atomic_write_failure_keeps_the_old_file(tmp_path, cause, words):
    path = tmp_path / "report.json"
    path.write_bytes(b"the previous report")
    with pytest.raises(WriteError) as info:
        atomic_write(path, failing_bytes(cause))
    assert str(info.value) == f"cannot write {path}: {words}; the previous file is unchanged"
    assert (info.value.path, info.value.cause) == (path, words)
    assert path.read_bytes() == b"the previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_atomic_write_failure_without_a_previous_file(tmp_path):
    with pytest.raises(WriteError, match=r"report.json: no space left on device$"):
        atomic_write(tmp_path / "report.json", failing_bytes())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("step, cause, words", [("replace", errno.EACCES, "permission denied"),
                                                ("replace", errno.EPERM, "permission denied"),
                                                ("mkstemp", errno.EROFS, "read-only file system"),
                                                ("fsync", errno.ENOSPC, "no space left on device")])
def test_atomic_write_failure_at_each_step(tmp_path, monkeypatch, step, cause, words):
    """The rename, the temporary file's creation and the sync fail as on a real disk."""
    def fail(*args, **kwargs):
        raise OSError(cause, os.strerror(cause))
    module = files.tempfile if step == "mkstemp" else files.os
    monkeypatch.setattr(module, step, fail)
    path = tmp_path / "weights.npz"
    path.write_bytes(b"previous")
    with pytest.raises(WriteError, match=f": {words}; the previous file is unchanged$"):
        atomic_write(path, lambda handle: handle.write(b"new"))
    monkeypatch.undo()
    assert path.read_bytes() == b"previous" and sorted(tmp_path.iterdir()) == [path]


def test_atomic_write_under_a_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("not a directory")
    with pytest.raises(WriteError, match="afile/out.npz: a parent path is a file, not a directory$"):
        atomic_write(tmp_path / "afile" / "out.npz", lambda handle: handle.write(b"x"))


def test_atomic_write_still_writes(tmp_path):
    atomic_write(tmp_path / "new" / "file.bin", lambda handle: handle.write(b"content"))
    assert (tmp_path / "new" / "file.bin").read_bytes() == b"content"
    assert no_temporary_files(tmp_path)


# --------------------------------------------------------------------------- torch_port.train


def _fail_checkpoint(monkeypatch, at: int, times: int = 1, cause: int = errno.ENOSPC) -> list:
    """Make checkpoint number ``at`` (from 1), and the ``times - 1`` after it, fail half-way with
    ``cause``, through the real ``atomic_write``; return the list of attempted paths."""
    attempts = []

    def atomic_write_failing(path, write):
        attempts.append(Path(path))
        failing = at <= len(attempts) < at + times
        return atomic_write(path, failing_bytes(cause) if failing else write)

    monkeypatch.setattr(ckpt, "atomic_write", atomic_write_failing)
    return attempts


def test_full_disk_at_the_first_checkpoint(tmp_path, data_dir, monkeypatch, capsys):
    """The disk is full when the first checkpoint is written: one line naming it and "no
    space", exit 3; the previous run's checkpoint is intact and nothing else was written."""
    out = tmp_path / "out"
    out.mkdir()
    previous = _previous_checkpoint(out)
    _fail_checkpoint(monkeypatch, at=1)
    status = run_main(torch_train.main, _argv(out, "--data-dir", data_dir, "--checkpoint-every", "1"))
    line = one_error_line(status, capsys.readouterr().err)
    assert line == (f"error: cannot write {out / 'checkpoint.pt'}: no space left on device; the previous "
                    "file is unchanged; training stopped after epoch 0 (--on-write-error continue trains "
                    "on without the checkpoint)")
    assert (out / "checkpoint.pt").read_bytes() == previous
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]  # no temporary file, no lock


def test_full_disk_at_a_later_checkpoint(tmp_path, data_dir, monkeypatch, capsys):
    """The second checkpoint fails: the first stays, loadable, and the run can resume from it."""
    out = tmp_path / "out"
    attempts = _fail_checkpoint(monkeypatch, at=2)
    status = run_main(torch_train.main, _argv(out, "--data-dir", data_dir, "--checkpoint-every", "1"))
    line = one_error_line(status, capsys.readouterr().err)
    assert f"cannot write {out / 'checkpoint.pt'}: no space left on device" in line
    assert "training stopped after epoch 1" in line
    assert len(attempts) == 2
    assert ckpt.load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]
    monkeypatch.undo()
    status = run_main(torch_train.main, _argv(out, "--data-dir", data_dir, "--checkpoint-every", "1",
                                              "--resume"))
    assert status == 0, capsys.readouterr().err
    assert ckpt.load_checkpoint(out / "checkpoint.pt")["epoch"] == EPOCHS


def test_on_write_error_continue_trains_on(tmp_path, data_dir, monkeypatch, capsys):
    """``--on-write-error continue``: a warning line per failed checkpoint, and the run ends
    with the weights of a run whose checkpoints all succeeded."""
    straight, out = tmp_path / "straight", tmp_path / "out"
    assert run_main(torch_train.main, _argv(straight, "--data-dir", data_dir)) == 0
    capsys.readouterr()
    attempts = _fail_checkpoint(monkeypatch, at=2, times=2)
    status = run_main(torch_train.main, _argv(out, "--data-dir", data_dir, "--checkpoint-every", "1",
                                              "--on-write-error", "continue"))
    err = capsys.readouterr().err
    assert status == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2 and len(attempts) == EPOCHS, err
    assert warnings[0] == (f"warning: cannot write {out / 'checkpoint.pt'}: no space left on device; the "
                           "previous file is unchanged; training goes on after epoch 1 "
                           "(--on-write-error continue)")
    assert ckpt.load_checkpoint(out / "checkpoint.pt")["epoch"] == EPOCHS
    assert (out / "weights.npz").read_bytes() == (straight / "weights.npz").read_bytes()
    assert no_temporary_files(out)


def test_final_outputs_that_cannot_be_written(tmp_path, data_dir, monkeypatch, capsys):
    """``weights.npz`` cannot be written: one line naming it, exit 3, the old one kept."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "weights.npz").write_bytes(b"previous weights")

    def save_parameters(path, params):
        atomic_write(path, failing_bytes(errno.EROFS))
    monkeypatch.setattr(torch_train, "save_parameters", save_parameters)
    status = run_main(torch_train.main, _argv(out, "--data-dir", data_dir))
    line = one_error_line(status, capsys.readouterr().err)
    assert line == f"error: cannot write {out / 'weights.npz'}: read-only file system; the previous file " \
                   "is unchanged"
    assert (out / "weights.npz").read_bytes() == b"previous weights"
    assert sorted(p.name for p in out.iterdir()) == ["weights.npz"]


def test_file_size_limit_from_the_start(started):
    """A real EFBIG at the first checkpoint: one line, exit 3, the previous checkpoint intact."""
    run, out = started["start"]
    result = run.result()
    line = one_error_line(result.returncode, result.stderr)
    assert line.startswith(f"error: cannot write {out / 'checkpoint.pt'}: file too large"), line
    assert "the previous file is unchanged; training stopped after epoch 0" in line
    saved = ckpt.load_checkpoint(out / "checkpoint.pt")
    assert saved["epoch"] == 1 and saved["costs"] == [1.8]  # the previous run's
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]


def test_file_size_limit_after_the_first_checkpoint(started):
    """A real EFBIG at the second checkpoint: the first one stays, loadable."""
    run, out = started["after-first"]
    result = run.result()
    line = one_error_line(result.returncode, result.stderr)
    assert line.startswith(f"error: cannot write {out / 'checkpoint.pt'}: file too large"), line
    assert "training stopped after epoch 1" in line
    assert ckpt.load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]


# --------------------------------------------------------------------------- the other writers


def test_parity_report_json_that_cannot_be_written(tmp_path, data_dir, capsys):
    from parity.__main__ import main as parity_main

    (tmp_path / "afile").write_text("a file where a directory should be")
    target = tmp_path / "afile" / "report.json"
    status = run_main(parity_main, [str(a) for a in ["report", "--pair", "line-by-line:fast-exact", "--steps",
                                                     1, "--data-dir", data_dir, "--json", target]])
    line = one_error_line(status, capsys.readouterr().err)
    assert line == f"error: cannot write {target}: a parent path is a file, not a directory"


def test_benchmarks_json_on_a_full_disk(tmp_path, monkeypatch, capsys):
    from benchmarks import cli as benchmarks_cli

    target = tmp_path / "bench.json"
    target.write_text("{}\n")
    monkeypatch.setattr(benchmarks_cli, "atomic_write",
                        lambda path, write: atomic_write(path, failing_bytes()))
    status = run_main(benchmarks_cli.main, ["--epochs", "1", "--repeats", "1", "--impls", "fast",
                                            "--json", str(target)])
    line = one_error_line(status, capsys.readouterr().err)
    assert line == f"error: cannot write {target}: no space left on device; the previous file is unchanged"
    assert target.read_text() == "{}\n" and sorted(tmp_path.iterdir()) == [target]


@pytest.mark.tf
@pytest.mark.skipif(not HAS_TF, reason=NO_TF_REASON)
def test_tf_original_train_save_weights_that_cannot_be_written(tmp_path, data_dir):
    """Through a real subprocess: ``--save-weights`` under a file, after training."""
    (tmp_path / "afile").write_text("a file where a directory should be")
    target = tmp_path / "afile" / "weights.npz"
    run = Background(["-m", "tf_original.train", "--epochs", 1, "--data-dir", data_dir, "--quiet",
                      "--save-weights", target], tmp_path / "cwd")
    result = run.result()
    line = one_error_line(result.returncode, result.stderr)
    assert line == f"error: cannot write {target}: a parent path is a file, not a directory"
