"""One run per output directory, and stop signals: ``signs.runs`` and what the CLIs make of it.

* ``OUT/run.lock``: a second run on a directory in use refuses in one line naming the pid and
  host of the first (exit 4), ``--resume`` included; once the first ends, it runs. A lock left
  by a run that died (its pid no longer running) is taken over with a ``note:`` line.
* ``signals_interrupt`` (what ``run_main`` installs for every command, e.g. ``parity report``
  and ``benchmarks``): SIGTERM stops like Ctrl-C, one line, exit 143.
* ``StopRequest`` (what the training CLIs use): a stop signal only sets a flag; more signals
  are ignored; the previous handlers come back afterwards.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from signs_testing import Background, make_data_dir

torch = pytest.importorskip("torch")

from signs import runs  # noqa: E402
from signs.cli import EXIT_DIRECTORY_IN_USE, run_main  # noqa: E402
from signs.runs import DirectoryInUse, OutputLock, Stopped, StopRequest, signals_interrupt  # noqa: E402
from torch_port import train as torch_train  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

HOST = socket.gethostname()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_data_dir(tmp_path_factory.mktemp("run-guard-data"))


def _argv(out, data_dir, *extra):
    return [str(a) for a in ["--epochs", 2, "--out", out, "--data-dir", data_dir, "--quiet", *extra]]


def only_error_line(status, stderr, expected_status) -> str:
    """``expected_status``, no traceback, exactly one line on stderr: ``error: ...``."""
    assert status == expected_status, f"exit status {status}, stderr:\n{stderr}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# --------------------------------------------------------------------------- the lock


def test_lock_records_pid_host_and_command_and_goes_away(tmp_path):
    out = tmp_path / "new" / "out"
    with OutputLock(out, "python -m torch_port.train --out X") as lock:
        record = json.loads(lock.path.read_text())
        assert (record["pid"], record["host"]) == (os.getpid(), HOST)
        assert record["command"] == "python -m torch_port.train --out X" and record["started"]
    assert out.is_dir() and list(out.iterdir()) == []


def test_second_lock_refuses_and_the_first_is_kept(tmp_path):
    with OutputLock(tmp_path, "first"):
        with pytest.raises(DirectoryInUse) as info:
            OutputLock(tmp_path, "second").__enter__()
        assert str(info.value).startswith(f"{tmp_path} is in use by pid {os.getpid()} on host {HOST} (since ")
        assert ": first) (lock " in str(info.value) and "pass another --out" in str(info.value)
        assert json.loads((tmp_path / "run.lock").read_text())["command"] == "first"
    with OutputLock(tmp_path, "third"):  # free again
        pass


def test_busy_directory_refuses_a_run_then_it_runs(tmp_path, data_dir, capsys):
    out = tmp_path / "out"
    with OutputLock(out, "another run"):
        status = run_main(torch_train.main, _argv(out, data_dir))
        line = only_error_line(status, capsys.readouterr().err, EXIT_DIRECTORY_IN_USE)
        assert line.startswith(f"error: {out} is in use by pid {os.getpid()} on host {HOST}"), line
        assert sorted(p.name for p in out.iterdir()) == ["run.lock"]  # nothing written
    assert run_main(torch_train.main, _argv(out, data_dir)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["costs.png", "metrics.json", "weights.npz"]


def test_resume_takes_the_lock_too(tmp_path, data_dir, capsys):
    out = tmp_path / "out"
    assert run_main(torch_train.main, _argv(out, data_dir, "--checkpoint-every", 1)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    with OutputLock(out, "another run"):
        status = run_main(torch_train.main, _argv(out, data_dir, "--checkpoint-every", 1, "--resume"))
        assert "is in use by pid" in only_error_line(status, capsys.readouterr().err, EXIT_DIRECTORY_IN_USE)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, data_dir, capsys):
    out = tmp_path / "out"
    out.mkdir()
    pid = dead_pid()
    (out / "run.lock").write_text(json.dumps({"pid": pid, "host": HOST, "command": "killed -9",
                                              "started": "2024-01-01T00:00:00"}) + "\n")
    status = run_main(torch_train.main, _argv(out, data_dir))
    err = capsys.readouterr().err
    assert status == 0, err
    notes = [line for line in err.splitlines() if line.startswith(f"note: {out / 'run.lock'}")]
    assert notes == [f"note: {out / 'run.lock'}: taking over the lock of pid {pid} on host {HOST} (since "
                     "2024-01-01T00:00:00: killed -9), which is no longer running (it stopped without "
                     "cleaning up)"], err
    assert not (out / "run.lock").exists() and (out / "weights.npz").exists()


def test_unreadable_stale_lock_is_taken_over(tmp_path, capsys):
    (tmp_path / "run.lock").write_text("garbage, not JSON")
    with OutputLock(tmp_path):
        assert json.loads((tmp_path / "run.lock").read_text())["pid"] == os.getpid()
    assert "taking over the lock of pid ? on host ?" in capsys.readouterr().err


def test_file_system_without_locks_is_a_note(tmp_path, monkeypatch, capsys):
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
    monkeypatch.setattr(fcntl, "flock", no_locks)
    with OutputLock(tmp_path):
        assert (tmp_path / "run.lock").exists()
    assert "cannot lock files" in capsys.readouterr().err


def test_two_concurrent_runs_on_one_directory(tmp_path, data_dir):
    """Real subprocesses: the second refuses in one line while the first trains; the first
    ends normally; after it, the second runs."""
    out = tmp_path / "out"
    first = Background(["-m", "torch_port.train", "--epochs", 100_000, "--out", out, "--data-dir", data_dir,
                        "--quiet", "--checkpoint-every", 1], tmp_path / "first")  # stopped below
    deadline = time.monotonic() + 180
    while not (out / "checkpoint.pt").exists() and first.process.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)  # the first run holds the lock and trains
    assert first.process.poll() is None, first.result().stderr
    second = Background(["-m", "torch_port.train", *_argv(out, data_dir)], tmp_path / "second").result()
    line = only_error_line(second.returncode, second.stderr, EXIT_DIRECTORY_IN_USE)
    assert line.startswith(f"error: {out} is in use by pid {first.process.pid} on host {HOST}"), line
    assert "--epochs 100000" in line
    first.process.send_signal(signal.SIGTERM)  # as it would end: cleanly, releasing the lock
    assert first.result().returncode == 128 + signal.SIGTERM, first.result().stderr
    again = Background(["-m", "torch_port.train", *_argv(out, data_dir)], tmp_path / "again").result()
    assert again.returncode == 0, again.stderr
    assert not (out / "run.lock").exists()


# --------------------------------------------------------------------------- signals


def test_sigterm_stops_any_command_in_one_line(capsys):
    """What ``python -m parity report`` or ``python -m benchmarks`` get from ``run_main``."""
    def main(argv):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # interrupted long before
        return 0
    started = time.monotonic()
    status = run_main(main, [])
    assert time.monotonic() - started < 4
    line = only_error_line(status, capsys.readouterr().err, 128 + signal.SIGTERM)
    assert line == "error: stopped by SIGTERM before the end; files already written are complete " \
                   "(no partial files)"


def test_ctrl_c_stops_any_command_in_one_line(capsys):
    def main(argv):
        raise KeyboardInterrupt
    line = only_error_line(run_main(main, []), capsys.readouterr().err, 128 + signal.SIGINT)
    assert line.startswith("error: stopped by SIGINT before the end")


def test_signals_interrupt_restores_the_handlers():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGXFSZ)}
    with pytest.raises(Stopped) as info, signals_interrupt():
        assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert info.value.signum == signal.SIGTERM and isinstance(info.value, KeyboardInterrupt)
    assert {s: signal.getsignal(s) for s in before} == before


def test_stop_request_sets_a_flag_and_ignores_more_signals(capfd):
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest("finishing this epoch, then saving a checkpoint") as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.requested and stop.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: ignored, with a notice
        time.sleep(0.05)
        assert stop.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before
    err = capfd.readouterr().err
    assert "SIGTERM: finishing this epoch, then saving a checkpoint" in err
    assert "SIGINT: already stopping (finishing this epoch, then saving a checkpoint)" in err


def test_a_stop_under_way_ignores_the_next_signal(capfd):
    """After a StopRequest acted on a signal, ``run_main``'s handler does not raise for the next."""
    def main(argv):
        with StopRequest() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)  # during the clean exit: ignored
        time.sleep(0.05)
        raise runs.Interrupted("interrupted after epoch 3 (SIGTERM): saved X", stop.signum)
    status = run_main(main, [])
    err = capfd.readouterr().err
    assert status == 128 + signal.SIGTERM, err
    assert err.rstrip().endswith("error: interrupted after epoch 3 (SIGTERM): saved X")
    assert "SIGTERM: already stopping" in err
