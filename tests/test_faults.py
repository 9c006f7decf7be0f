"""Faults during training: a non-finite cost, Ctrl-C (SIGINT), SIGTERM and SIGKILL at random moments.

* A NaN cost stops both torch implementations with ``NonFiniteCost`` naming the epoch and the
  step; through the CLI it is exit 2 and one error line, and the previous ``checkpoint.pt`` in
  ``--out`` stays byte-identical.
* SIGINT or SIGTERM (``docker stop``, a scheduler's preemption) to a real
  ``python -m torch_port.train`` subprocess saves a checkpoint and exits 130 or 143 with
  "interrupted after epoch N (SIGTERM): saved ..."; ``--resume`` then ends with the very
  weights of an uninterrupted run, bit for bit. Signals sent again and again while it saves
  change nothing of that.
* SIGTERM to ``python -m tf_original.train`` (no checkpoint there) stops it with one line,
  exit 143, nothing written.
* SIGKILL at seeded random moments (three runs, killed concurrently): the ``checkpoint.pt`` left loads,
  and resuming from it again ends bit for bit where the uninterrupted run does.

The subprocesses share one thread each (``OMP_NUM_THREADS=1`` from ``cli_env``), so the
interrupted, resumed and straight runs compute alike.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from signs_testing import HAS_TF, NO_TF_REASON, Background, cli_env, write_split

torch = pytest.importorskip("torch")

from signs import convert_to_one_hot, flatten  # noqa: E402
from signs.cli import run_main  # noqa: E402
from signs.data import load_from, minibatch_indices  # noqa: E402
from signs.errors import NonFiniteCost  # noqa: E402
from torch_port import checkpoint as ckpt  # noqa: E402
from torch_port import model as port  # noqa: E402
from torch_port import nn_model  # noqa: E402
from torch_port import train as torch_train  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

PROG = "python -m torch_port.train"
EPOCHS = 8
SEED = 3


@pytest.fixture(scope="module")
def mid_data_dir(synthetic_dir, tmp_path_factory) -> Path:
    """The first 240 synthetic training images and the 120 test images: quicker epochs."""
    train_x, train_y, test_x, test_y, _ = load_from(synthetic_dir)
    directory = tmp_path_factory.mktemp("mid-signs")
    write_split(directory / "train_signs.h5", "train", train_x[:240], train_y[0, :240])
    write_split(directory / "test_signs.h5", "test", test_x, test_y[0])
    return directory


def _train_argv(out, *extra):
    return ["-m", "torch_port.train", "--epochs", EPOCHS, "--out", out, "--quiet", *extra]


KILL_RUNS = 3


def _wait_for(path: Path, run: Background, timeout: float = 180) -> bool:
    """Poll until ``path`` exists (the run is training) or the run ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        if run.process.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def _wait_for_replacement(path: Path, run: Background, timeout: float = 180) -> None:
    """Poll until ``path`` was atomically replaced (another epoch saved) or the run ended."""
    inode = path.stat().st_ino
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.process.poll() is None:
        try:
            if path.stat().st_ino != inode:
                return
        except FileNotFoundError:
            pass
        time.sleep(0.005)


def _signal_during_save(run: Background, path: Path, timeout: float = 180) -> int:
    """Once the run acted on the first signal (its notice is on stderr), send SIGINT and SIGTERM
    in turn every 2 ms until ``path`` is replaced (the save that the first signal asked for is
    done) or the run ended; return how many were sent."""
    inode, sent = path.stat().st_ino, 0
    deadline = time.monotonic() + timeout
    while "finishing this epoch" not in (run.cwd / ".stderr").read_text() and run.process.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.001)
    while time.monotonic() < deadline and run.process.poll() is None:
        if path.stat().st_ino != inode:
            break
        run.process.send_signal((signal.SIGINT, signal.SIGTERM)[sent % 2])
        sent += 1
        time.sleep(0.002)
    return sent


def _interrupt_then_resume(job: dict, signum: int, delay: float):
    """Send ``signum`` ``delay`` s after the run's first checkpoint appeared (with
    ``job["again"]``, then more signals while it saves); once the run is over, record what it
    left (``job["saved"]``: the loaded checkpoint, or the exception) and start the resumed run
    (``--resume`` if a checkpoint is there, else from scratch)."""
    run, out = job["run"], job["out"]
    _wait_for(out / "checkpoint.pt", run)
    for _ in range(job["later_saves"]):  # each save replaces the file: a new inode
        _wait_for_replacement(out / "checkpoint.pt", run)
    time.sleep(delay)
    if run.process.poll() is None:
        run.process.send_signal(signum)
        if job.get("again"):
            job["sent_again"] = _signal_during_save(run, out / "checkpoint.pt")
    job["result"] = run.result()
    job["saved"] = None
    if (out / "checkpoint.pt").exists():
        try:
            job["saved"] = ckpt.load_checkpoint(out / "checkpoint.pt")
        except Exception as exc:  # noqa: BLE001 -- reported by the test
            job["saved"] = exc
    resume = ["--resume"] if job["saved"] is not None else []
    job["resumed"] = Background([*job["argv"], *resume], out.parent / f"{out.name}-resume")


@pytest.fixture(scope="module", autouse=True)
def launched(tmp_path_factory, mid_data_dir):
    """Every subprocess, started when the module starts (they overlap the in-process tests):
    the uninterrupted run; one run SIGINTed as soon as it trains and KILL_RUNS runs SIGKILLed at
    seeded random moments after their first checkpoint, each resumed as soon as it ended."""
    root = tmp_path_factory.mktemp("faults")
    rng = random.Random(20240808)
    straight = Background(_train_argv(root / "straight", "--data-dir", mid_data_dir), root / "straight")
    # (signal, further saves to wait for, then seconds to wait): kills land in mid-epoch or mid-save
    signals = {"sigint": (signal.SIGINT, 0, 0.0), "sigterm": (signal.SIGTERM, 0, 0.0),
               "sigterm-again": (signal.SIGTERM, 0, 0.0)}
    signals.update({f"kill{k}": (signal.SIGKILL, rng.randint(0, 4), rng.uniform(0.0, 0.15))
                    for k in range(KILL_RUNS)})
    jobs, threads = {}, []
    for name, (signum, later_saves, delay) in signals.items():
        out = root / name
        # sigterm: stopped after its first periodic checkpoint (epoch 3), before the next
        every = "3" if name == "sigterm" else "1"
        argv = _train_argv(out, "--data-dir", mid_data_dir, "--checkpoint-every", every)
        jobs[name] = {"run": Background(argv, root / f"{name}-cwd"), "out": out, "argv": argv,
                      "later_saves": later_saves, "again": name == "sigterm-again"}
        threads.append(threading.Thread(target=_interrupt_then_resume, args=(jobs[name], signum, delay)))
        threads[-1].start()
    yield {"straight": straight, "jobs": jobs, "threads": threads}
    for thread in threads:
        thread.join(240)
    for run in [straight, *(job["run"] for job in jobs.values()),
                *(job["resumed"] for job in jobs.values() if "resumed" in job)]:
        run.stop()


def _finished(run: Background) -> Path:
    result = run.result()
    assert result.returncode == 0, result.stderr
    return run.cwd


def assert_same_weights(a: Path, b: Path):
    with np.load(a / "weights.npz") as left, np.load(b / "weights.npz") as right:
        assert sorted(left.files) == sorted(right.files)
        for name in left.files:
            assert left[name].dtype == right[name].dtype
            assert left[name].tobytes() == right[name].tobytes(), f"{name} differs"


def error_line(returncode, stderr, status: int = 2) -> str:
    """Exit ``status``, no traceback, and besides ``note:`` lines (which data was used) and the
    signal handlers' notices one error line, the last."""
    assert returncode == status, f"exit status {returncode}, expected {status}, stderr:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("note: ")]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    return errors[0]


# --------------------------------------------------------------------------- (a) NaN cost

@pytest.fixture(scope="module")
def small_arrays(mid_data_dir):
    train_x, train_y, test_x, test_y, _ = load_from(mid_data_dir)
    return (flatten(train_x[:96]), convert_to_one_hot(train_y[:, :96], 6),
            flatten(test_x[:24]), convert_to_one_hot(test_y[:, :24], 6))


@pytest.mark.parametrize("train", [port.model, nn_model.train], ids=["line-by-line", "idiomatic"])
def test_nan_in_the_data_names_epoch_and_step(train, small_arrays):
    X_train, Y_train, X_test, Y_test = small_arrays
    X_train = X_train.copy()
    column = 50
    X_train[:, column] = np.nan
    # Epoch 0 shuffles with seed SEED + 1; the step is the batch that holds the poisoned column.
    batches = minibatch_indices(X_train.shape[1], 32, SEED + 1)
    step = next(k for k, batch in enumerate(batches) if column in batch) + 1
    with pytest.raises(NonFiniteCost) as info:
        train(X_train, Y_train, X_test, Y_test, num_epochs=2, print_cost=False, seed=SEED)
    assert (info.value.epoch, info.value.step) == (0, step)
    assert f"epoch 0, step {step}" in str(info.value)


@pytest.mark.parametrize("train", [port.model, nn_model.train], ids=["line-by-line", "idiomatic"])
def test_huge_learning_rate_stops_with_nonfinite_cost(train, small_arrays):
    with pytest.raises(NonFiniteCost) as info:
        train(*small_arrays, learning_rate=1e30, num_epochs=3, print_cost=False, seed=SEED)
    assert not np.isfinite(info.value.value)
    assert f"epoch {info.value.epoch}, step {info.value.step}" in str(info.value)


@pytest.mark.parametrize("impl", ["line-by-line", "idiomatic"])
def test_nan_cost_through_the_cli_keeps_the_checkpoint(impl, mid_data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    common = ["--checkpoint-every", "1", "--out", out, "--data-dir", mid_data_dir, "--quiet", "--impl", impl]
    # The previous run: one sane epoch, which leaves checkpoint.pt, weights.npz, metrics.json.
    assert run_main(torch_train.main, [str(a) for a in ["--epochs", "1", *common]]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "checkpoint.pt" in before
    status = run_main(torch_train.main, [str(a) for a in ["--epochs", "3", "--lr", "1e30", *common]])
    line = error_line(status, capsys.readouterr().err)
    assert "cost became" in line and "epoch 0, step" in line, line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --------------------------------------------------------------------------- (b) SIGINT

def _job(launched, name) -> dict:
    for thread in launched["threads"]:
        thread.join(240)
    return launched["jobs"][name]


@pytest.mark.parametrize("name, signum", [("sigint", signal.SIGINT), ("sigterm", signal.SIGTERM),
                                          ("sigterm-again", signal.SIGTERM)])
def test_stop_signal_saves_a_checkpoint_and_resume_matches(launched, name, signum):
    """SIGINT or SIGTERM: the epoch is finished and saved (for sigterm, epochs after its last
    periodic checkpoint), one line says so and how to resume, exit 128 + signal; resuming ends
    bit for bit where the uninterrupted run does. sigterm-again: signals sent every 2 ms while
    the checkpoint is written change nothing."""
    job = _job(launched, name)
    result = job["result"]
    line = error_line(result.returncode, result.stderr, status=128 + signum)
    stopped = int(line.split("interrupted after epoch ")[1].split(" ")[0])
    assert line == (f"error: interrupted after epoch {stopped} ({signal.Signals(signum).name}): saved "
                    f"{job['out'] / 'checkpoint.pt'}; add --resume to the same command to continue")
    assert isinstance(job["saved"], dict), job["saved"]
    assert job["saved"]["epoch"] == stopped + 1 < EPOCHS, "interrupted too late to test resuming"
    if name == "sigterm":  # saved past its periodic checkpoint of epoch 3
        assert job["saved"]["epoch"] > 3, job["saved"]["epoch"]
    if name == "sigterm-again":
        assert job["sent_again"] >= 1, "the run saved before a second signal could be sent"
        assert "already stopping" in result.stderr
    assert not (job["out"] / "run.lock").exists()
    assert not list(job["out"].glob(".*.tmp"))
    resumed = job["resumed"].result()
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(job["out"], _finished(launched["straight"]))


# --------------------------------------------------------------------------- (c) SIGKILL

@pytest.mark.parametrize("k", range(KILL_RUNS))
def test_sigkill_at_random_moments_then_resume(launched, k):
    """Killed at its own moment (saves included): the checkpoint left loads, and resuming from it
    ends with the uninterrupted run's weights."""
    job = _job(launched, f"kill{k}")
    assert job["result"].returncode == -signal.SIGKILL, "the run ended before it was killed"
    if job["saved"] is not None:  # never a half-written file
        assert isinstance(job["saved"], dict), job["saved"]
        assert 1 <= job["saved"]["epoch"] <= EPOCHS
    finished = job["resumed"].result()
    assert finished.returncode == 0, finished.stderr
    assert_same_weights(job["out"], _finished(launched["straight"]))


# --------------------------------------------------------------------------- (d) SIGTERM, TensorFlow

@pytest.mark.tf
@pytest.mark.skipif(not HAS_TF, reason=NO_TF_REASON)
def test_sigterm_stops_tf_original_train_with_one_line(mid_data_dir, tmp_path):
    """No checkpoint on the TF side: SIGTERM in mid-training stops at the epoch's end, one line,
    exit 143, and the files that ``--plot`` and ``--save-weights`` name are left as they were."""
    previous = {"costs.png": b"previous plot", "weights.npz": b"previous weights"}
    for name, content in previous.items():
        (tmp_path / name).write_bytes(content)
    run = Background(["-m", "tf_original.train", "--epochs", 100_000, "--data-dir", mid_data_dir,
                      "--plot", tmp_path / "costs.png", "--save-weights", tmp_path / "weights.npz"],
                     tmp_path / "cwd", env=cli_env(PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + 180
    while "Cost after epoch 0:" not in (run.cwd / ".stdout").read_text() and run.process.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    run.process.send_signal(signal.SIGTERM)
    result = run.result()
    line = error_line(result.returncode, result.stderr, status=128 + signal.SIGTERM)
    assert line.startswith("error: interrupted after epoch ") and "(SIGTERM)" in line, line
    assert "tf1 runs keep no checkpoint, nothing was written" in line, line
    assert {name: (tmp_path / name).read_bytes() for name in previous} == previous
