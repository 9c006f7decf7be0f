"""The command lines end to end: ``python -m tf_original.train`` and ``python -m torch_port.train``.

The acceptance runs go through real subprocesses (``sys.executable -m ...``, the synthetic set
read from the session's ``$SIGNS_CACHE_DIR``), started together at the top of the module so
they overlap with the in-process tests; their results are checked at the end. Resume, predict
and the bad values run in-process through the same ``run_main`` the ``__main__`` blocks call
(a few real subprocesses prove that wiring), because each subprocess pays seconds of imports.
"""

from __future__ import annotations

import importlib
import json
import os
import signal

import numpy as np
import pytest
from signs_testing import HAS_TF, NO_TF_REASON, Background, assert_one_line_error, cli_env

torch = pytest.importorskip("torch")

from signs import flatten  # noqa: E402
from signs.cli import run_main  # noqa: E402
from signs.data import load_image  # noqa: E402
from signs.implementations import DEFAULT_TORCH, get, names  # noqa: E402
from signs.weights import PARAMETER_SHAPES, load_initial_parameters, load_parameters, save_parameters  # noqa: E402
from tf_original import train as tf_train  # noqa: E402  (imports no TensorFlow until it trains)
from torch_port import checkpoint as ckpt  # noqa: E402
from torch_port import model as port  # noqa: E402
from torch_port import train as torch_train  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TORCH_PROG = "python -m torch_port.train"
TF_PROG = "python -m tf_original.train"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def call(module, argv, capsys):
    """Run a CLI's ``main`` in-process as its ``__main__`` block does: (status, stdout, stderr)."""
    try:
        status = run_main(module.main, [str(a) for a in argv])
    except SystemExit as exc:  # argparse errors
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def numpy_predict(image, params):
    """The tutorial's forward pass in float64 NumPy on one image -> class."""
    x = flatten(image[None], np.float64)
    p = {k: v.astype(np.float64) for k, v in params.items()}
    a1 = np.maximum(p["W1"] @ x + p["b1"], 0)
    a2 = np.maximum(p["W2"] @ a1 + p["b2"], 0)
    return int(np.argmax(p["W3"] @ a2 + p["b3"], axis=0)[0])


@pytest.fixture(scope="session")
def photo(tmp_path_factory):
    """A generated 90x120 RGB 'photo' (a skin-coloured blob on a gradient), saved as PNG."""
    from PIL import Image

    yy, xx = np.mgrid[0:90, 0:120]
    image = np.stack([xx * 2, yy * 2, 255 - xx], axis=-1).astype(np.uint8)
    image[((xx - 60) ** 2 + (yy - 45) ** 2) < 25 ** 2] = (220, 170, 130)
    path = tmp_path_factory.mktemp("photo") / "thumbs_up.png"
    Image.fromarray(image).save(path)
    return path


@pytest.fixture(scope="session")
def tf_blocker(tmp_path_factory):
    """A directory that, first on PYTHONPATH, makes ``import tensorflow`` / ``import keras`` fail."""
    root = tmp_path_factory.mktemp("no-tensorflow")
    for name in ("tensorflow", "keras"):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(
            f"raise ImportError('{name} is made unimportable for this test')\n")
    return root


# --------------------------------------------------------------------------- acceptance runs

IMPORTS_NO_TF = ("import sys, torch_port.train, torch_port.nn_model, torch_port.model, torch_port.optim, "
                 "torch_port.checkpoint, torch_port.part1; "
                 "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")


@pytest.fixture(scope="session")
def cli_runs(tmp_path_factory, synthetic_dir, tf_blocker, photo, bad_inputs):
    """The slow subprocess runs of this module, started together so that they overlap.

    ``synthetic_dir`` is generated first, so the runs read the session cache, not race to fill it.
    """
    root = tmp_path_factory.mktemp("cli-runs")
    blocked = cli_env(extra_path=[str(tf_blocker)])
    started = {}
    if HAS_TF:
        started["tf"] = Background(["-m", "tf_original.train", "--epochs", 3, "--data", "synthetic",
                                    "--plot", "out.png"], root / "tf")
        started["tf-quiet"] = Background(["-m", "tf_original.train", "--epochs", 3, "--data", "synthetic",
                                          "--plot", "out.png", "--quiet", "--impl", "keras"],
                                         root / "tf-quiet")
    for impl in ("line-by-line", DEFAULT_TORCH):  # the default, fast, without --impl
        choice = ["--impl", impl] if impl != DEFAULT_TORCH else []
        started[impl] = Background(["-m", "torch_port.train", "--epochs", 5, "--data", "synthetic",
                                    "--out", root / impl / "out", *choice, "--predict", photo],
                                   root / impl, env=blocked)
    started["blocker"] = Background(["-m", "tensorflow"], root / "blocker", env=blocked)
    started["imports"] = Background(["-c", IMPORTS_NO_TF], root / "imports")
    bad = [("torch_port.train", ["--epochs", "-1"]), ("tf_original.train", ["--lr", "0"]),
           ("tf_original.train", ["--data", "signs", "--data-dir", bad_inputs / "only-test"])]
    for k, (module, argv) in enumerate(bad):
        started[f"bad{k}"] = Background(["-m", module, *argv], root / f"bad{k}")
    yield root, started
    for run in started.values():
        run.stop()


@pytest.fixture(scope="module", autouse=True)
def _start_runs_first(request):
    """Start the background runs before this module's first test when any selected test needs
    them: the in-process tests (and, as conftest.py runs the tests that collect the results
    last, the rest of the suite) then run while the subprocesses work."""
    if any("cli_runs" in getattr(item, "fixturenames", ()) for item in request.session.items
           if getattr(item, "module", None) is request.module):  # doctest items have no module
        request.getfixturevalue("cli_runs")


# --------------------------------------------------------------------------- resume, predict

def _interrupt_at(monkeypatch, module, name, stop_epoch):
    """Make ``module.name`` deliver a real SIGINT (Ctrl-C) at the end of epoch ``stop_epoch``."""
    real = getattr(module, name)

    def wrapper(*args, on_epoch_end=None, **kwargs):
        def hooked(epoch, *rest):
            if epoch == stop_epoch:
                os.kill(os.getpid(), signal.SIGINT)  # the CLI's handler sets its flag
            return on_epoch_end(epoch, *rest)
        return real(*args, on_epoch_end=hooked, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


@pytest.mark.parametrize("impl", names("torch"))
def test_resume_after_interrupt_equals_straight_run(tmp_path, small_data_dir, monkeypatch, capsys, impl):
    module, name = importlib.import_module(get(impl).module), get(impl).function
    common = ["--epochs", 6, "--checkpoint-every", 3, "--data-dir", small_data_dir, "--impl", impl,
              "--quiet"]
    straight = tmp_path / "straight"
    status, out, err = call(torch_train, [*common, "--out", straight], capsys)
    assert status == 0, err
    final = load_parameters(straight / "weights.npz")
    assert (straight / "costs.png").read_bytes().startswith(PNG_SIGNATURE)  # --quiet writes the plot too

    # Interrupted with Ctrl-C at the end of epoch 3 (index 2): a checkpoint, then exit 130.
    resumed = tmp_path / "resumed"
    _interrupt_at(monkeypatch, module, name, stop_epoch=2)
    status, _, err = call(torch_train, [*common, "--out", resumed], capsys)
    assert status == 130 and "error: interrupted after epoch 2 (SIGINT)" in err and "Traceback" not in err
    assert not (resumed / "weights.npz").exists()
    assert not (resumed / "run.lock").exists()
    saved = torch.load(resumed / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 3 and saved["settings"]["num_epochs"] == 6
    monkeypatch.undo()

    status, out, err = call(torch_train, [*common, "--out", resumed, "--resume"], capsys)
    assert status == 0, err
    resumed_weights = load_parameters(resumed / "weights.npz")
    for key in final:
        assert np.array_equal(resumed_weights[key], final[key]), key  # bit for bit
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (straight, resumed))
    assert len(a["costs_every_5_epochs"]) == 2  # epochs 0 and 5, recorded though --quiet
    assert a["costs_every_5_epochs"] == b["costs_every_5_epochs"]
    assert a["implementation"] == b["implementation"] == impl
    assert (a["train_accuracy"], a["test_accuracy"]) == (b["train_accuracy"], b["test_accuracy"])
    assert torch.load(straight / "checkpoint.pt", weights_only=True)["epoch"] == 6


def test_mean_epoch_cost_fast_exact_equals_idiomatic(tmp_path, small_data_dir, capsys):
    """``--epoch-cost mean`` through the CLI: fast-exact and idiomatic give the same bits."""
    results = {}
    for impl in ("idiomatic", "fast-exact"):
        out = tmp_path / impl
        status, _, err = call(torch_train, ["--epochs", 2, "--data-dir", small_data_dir, "--impl", impl,
                                            "--epoch-cost", "mean", "--quiet", "--out", out], capsys)
        assert status == 0, err
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["epoch_cost"] == "mean" and metrics["implementation"] == impl
        results[impl] = metrics["costs_every_5_epochs"], load_parameters(out / "weights.npz")
    assert results["idiomatic"][0] == results["fast-exact"][0] and len(results["fast-exact"][0]) == 1
    for key, value in results["idiomatic"][1].items():
        assert value.tobytes() == results["fast-exact"][1][key].tobytes(), key


def test_help_names_the_implementations_and_the_epoch_seed(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # argparse wraps at hyphens: keep "fast-exact" whole
    with pytest.raises(SystemExit):
        torch_train.build_parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default: {DEFAULT_TORCH})" in text
    for impl in names("torch"):
        assert f"{impl}: {get(impl).label}" in text
    assert "np.random.seed(seed + e + 1)" in text and "seed + e)" not in text


def test_predict_only_with_initial_weights(tmp_path, small_data_dir, photo, capsys):
    status, out, err = call(torch_train, ["--epochs", 0, "--data-dir", small_data_dir,
                                          "--predict", photo, "--quiet"], capsys)
    assert status == 0, err
    expected = numpy_predict(load_image(photo), load_initial_parameters("float32"))
    assert f'{photo}: predicted class "{expected}"' in out


def test_predict_with_given_weights(tmp_path, small_data_dir, photo, capsys):
    rng = np.random.default_rng(0)
    weights = {k: rng.normal(0, 0.05, v.shape).astype(np.float32)
               for k, v in load_initial_parameters("float32").items()}
    save_parameters(tmp_path / "w.npz", weights)
    status, out, err = call(torch_train, ["--epochs", 0, "--data-dir", small_data_dir, "--weights",
                                          tmp_path / "w.npz", "--predict", photo, "--quiet"], capsys)
    assert status == 0, err
    assert f'predicted class "{numpy_predict(load_image(photo), weights)}"' in out


# --------------------------------------------------------------------------- bad values

@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory, small_data_dir):
    """Files for the bad-input cases."""
    root = tmp_path_factory.mktemp("bad-inputs")
    (root / "note.png").write_text("this is not an image\n")
    (root / "corrupt.pt").write_bytes(os.urandom(2048))
    torch.save({"format_version": 1, "architecture": "resnet-18", "epoch": 1,
                "parameters": {"conv1.weight": torch.zeros(64, 3, 7, 7)},
                "optimizer": {}, "costs": [], "settings": {}}, root / "resnet.pt")
    torch.save({"format_version": 1, "architecture": ckpt.ARCHITECTURE, "epoch": 1,
                "parameters": {**{k: torch.zeros(s) for k, s in PARAMETER_SHAPES.items()},
                               "W1": torch.zeros(50, 12288)},
                "optimizer": {}, "costs": [], "settings": {}}, root / "wider.pt")
    only_test = root / "only-test"
    only_test.mkdir()
    (only_test / "test_signs.h5").write_bytes((small_data_dir / "test_signs.h5").read_bytes())
    empty_train = root / "empty-train"
    empty_train.mkdir()
    (empty_train / "train_signs.h5").write_bytes(b"")
    (empty_train / "test_signs.h5").write_bytes((small_data_dir / "test_signs.h5").read_bytes())
    params = load_initial_parameters("float32")
    save_parameters(root / "good.npz", params)
    np.savez(root / "transposed.npz", **{**params, "W1": params["W1"].T})
    return root


COMMON_BAD = {
    "negative epochs": (["--epochs", "-1"], "--epochs"),
    "epochs not a number": (["--epochs", "ten"], "--epochs"),
    "lr zero": (["--lr", "0"], "--lr"),
    "lr negative": (["--lr", "-0.001"], "--lr"),
    "lr nan": (["--lr", "nan"], "--lr"),
    "batch size zero": (["--batch-size", "0"], "--batch-size"),
    "unknown data": (["--data", "imagenet"], "--data"),
    "data signs, train file missing": (["--data", "signs", "--data-dir", "{only-test}"], "train_signs.h5"),
    "data dir missing": (["--data-dir", "{nowhere}"], "does not exist"),
    "empty train file": (["--data-dir", "{empty-train}"], "file is empty"),
    "weights of another layout": (["--weights", "{transposed.npz}"], "W1 has shape"),
}
TORCH_BAD = {
    "unknown impl": (["--impl", "keras"], "--impl"),
    "unknown optimizer": (["--optimizer", "sgd"], "--optimizer"),
    "unknown device": (["--device", "tpu"], "--device"),
    "threads zero": (["--threads", "0"], "--threads"),
    "negative checkpoint-every": (["--checkpoint-every", "-3"], "--checkpoint-every"),
    "non-image predict file": (["--predict", "{note.png}"], "not a readable image"),
    "missing predict file": (["--predict", "{nowhere.jpg}"], "no such image file"),
    "corrupt checkpoint": (["--resume", "{corrupt.pt}"], "not a readable checkpoint"),
    "checkpoint of another architecture": (["--resume", "{resnet.pt}"], "architecture"),
    "checkpoint with other shapes": (["--resume", "{wider.pt}"], "W1 has shape"),
    "missing checkpoint": (["--resume", "{nowhere.pt}"], "no such checkpoint"),
    "out is a file": (["--out", "{good.npz}"], "not a directory"),
}


def _fill(argv, root):
    out = []
    for arg in argv:
        if arg.startswith("{"):
            arg = str(root / arg.strip("{}"))
        out.append(arg)
    return out


def _check_bad(module, prog, argv, expected, bad_inputs, small_data_dir, tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    sentinel = {"weights.npz": b"old weights", "metrics.json": b"{}"}
    for name, content in sentinel.items():
        (out_dir / name).write_bytes(content)
    argv = _fill(argv, bad_inputs)
    if "--data-dir" not in argv:
        argv += ["--data-dir", str(small_data_dir)]
    if module is torch_train and "--out" not in argv:
        argv += ["--out", str(out_dir)]
    status, _, err = call(module, argv, capsys)
    line = assert_one_line_error(status, err, prog)
    assert expected in line, line
    for name, content in sentinel.items():  # nothing overwritten
        assert (out_dir / name).read_bytes() == content


@pytest.mark.parametrize("case", sorted({**COMMON_BAD, **TORCH_BAD}))
def test_torch_train_bad_values(case, bad_inputs, small_data_dir, tmp_path, capsys):
    argv, expected = {**COMMON_BAD, **TORCH_BAD}[case]
    _check_bad(torch_train, TORCH_PROG, list(argv), expected, bad_inputs, small_data_dir, tmp_path, capsys)


@pytest.mark.parametrize("case", sorted(COMMON_BAD))
def test_tf_train_bad_values(case, bad_inputs, small_data_dir, tmp_path, capsys):
    argv, expected = COMMON_BAD[case]
    _check_bad(tf_train, TF_PROG, list(argv), expected, bad_inputs, small_data_dir, tmp_path, capsys)


def test_resume_without_a_path_needs_out(small_data_dir, capsys):
    status, _, err = call(torch_train, ["--resume", "--data-dir", small_data_dir], capsys)
    assert "need --out" in assert_one_line_error(status, err, TORCH_PROG)


def test_device_cuda_without_cuda(small_data_dir, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is available, so --device cuda is not an error here")
    status, _, err = call(torch_train, ["--device", "cuda", "--data-dir", small_data_dir], capsys)
    assert "no CUDA device" in assert_one_line_error(status, err, TORCH_PROG)


def test_resume_with_other_settings_is_refused(tmp_path, small_data_dir, capsys):
    params = port.initialize_parameters("float32")
    optimizer = port.make_optimizer("tf-adam", list(params.values()), 1e-4)
    settings = {"impl": "line-by-line", "optimizer_name": "tf-adam", "dtype": "float32",
                "lr": 0.0001, "batch_size": 32, "seed": 3, "num_epochs": 6}
    ckpt.save_checkpoint(tmp_path / "checkpoint.pt", epoch=3, optimizer=optimizer, costs=[1.8],
                         parameters={k: v.detach() for k, v in params.items()}, settings=settings)
    status, _, err = call(torch_train, ["--epochs", 9, "--out", tmp_path, "--resume", "--impl",
                                        "line-by-line", "--data-dir", small_data_dir], capsys)
    assert "num_epochs=6" in assert_one_line_error(status, err, TORCH_PROG)


# --------------------------------------------------------------------------- end-to-end results

@pytest.mark.tf
@pytest.mark.skipif(not HAS_TF, reason=NO_TF_REASON)
def test_tf_original_train_synthetic_with_plot(cli_runs):
    root, started = cli_runs
    result = started["tf"].result()
    assert result.returncode == 0, result.stderr
    assert "Cost after epoch 0:" in result.stdout
    assert "Train Accuracy:" in result.stdout and "Test Accuracy:" in result.stdout
    assert "train accuracy" in result.stdout and "test accuracy" in result.stdout
    assert "data: synthetic" in result.stdout
    assert "note: using the synthetic SIGNS-like set" in result.stderr
    assert (root / "tf" / "out.png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.tf
@pytest.mark.skipif(not HAS_TF, reason=NO_TF_REASON)
def test_tf_original_train_quiet_still_plots(cli_runs):
    """The tutorial records costs only when it prints them; ``--quiet`` still gets the plot."""
    root, started = cli_runs
    result = started["tf-quiet"].result()
    assert result.returncode == 0, result.stderr
    assert "Cost after" not in result.stdout and "Accuracy:" not in result.stdout
    assert "(keras, 3 epochs" in result.stdout
    assert (root / "tf-quiet" / "out.png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("impl", ["line-by-line", DEFAULT_TORCH])
def test_torch_port_train_without_tensorflow(cli_runs, impl, photo):
    """``--epochs 5 --data synthetic --out DIR`` with tensorflow and keras unimportable."""
    root, started = cli_runs
    blocker = started["blocker"].result()  # the blocker really blocks
    assert blocker.returncode != 0 and "made unimportable" in blocker.stderr
    result = started[impl].result()
    out = root / impl / "out"
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "Cost after epoch 0:" in result.stdout
    assert "train accuracy" in result.stdout and "test accuracy" in result.stdout
    assert "note: using the synthetic SIGNS-like set" in result.stderr
    assert (out / "costs.png").read_bytes().startswith(PNG_SIGNATURE)
    weights = load_parameters(out / "weights.npz")
    assert {k: v.shape for k, v in weights.items()} == PARAMETER_SHAPES
    assert all(v.dtype == np.float32 for v in weights.values())
    data = json.loads((out / "metrics.json").read_text())
    assert data["format_version"] == 1
    assert data["implementation"] == impl and data["impl"] == impl
    assert data["num_epochs"] == 5 and data["lr"] == 0.0001 and data["batch_size"] == 32
    assert data["seed"] == 3 and data["dtype"] == "float32" and data["optimizer_name"] == "tf-adam"
    assert data["device"] == "cpu" and data["data"] == "synthetic"
    assert len(data["costs_every_5_epochs"]) == 1  # epochs 0..4: recorded at epoch 0
    assert data["final_cost"] == data["costs_every_5_epochs"][-1]
    assert 0 <= data["train_accuracy"] <= 1 and 0 <= data["test_accuracy"] <= 1
    assert f"train accuracy {data['train_accuracy']:.4f}" in result.stdout
    assert "Glorot" in data["weights_start"]
    # --predict on a generated photo: the class the trained weights give it
    assert f'{photo}: predicted class "{numpy_predict(load_image(photo), weights)}"' in result.stdout


def test_both_torch_implementations_agree(cli_runs):
    """Same weights, batches and optimizer: equal to float32 round-off after 5 epochs."""
    root, started = cli_runs
    metrics = {}
    for impl in ("line-by-line", DEFAULT_TORCH):
        assert started[impl].result().returncode == 0
        metrics[impl] = json.loads((root / impl / "out" / "metrics.json").read_text())
    np.testing.assert_allclose(metrics["line-by-line"]["final_cost"], metrics[DEFAULT_TORCH]["final_cost"],
                               rtol=1e-5)
    a, b = (load_parameters(root / impl / "out" / "weights.npz") for impl in metrics)
    for key in a:
        assert np.abs(a[key] - b[key]).max() <= 1e-4 * np.abs(a[key]).max(), key


def test_torch_port_imports_no_tensorflow(cli_runs):
    result = cli_runs[1]["imports"].result()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_bad_values_through_real_subprocesses(cli_runs):
    """The ``__main__`` blocks use ``run_main``: exit 2, one line, no traceback."""
    expected = [(TORCH_PROG, "--epochs"), (TF_PROG, "--lr"), (TF_PROG, "train_signs.h5")]
    for k, (prog, text) in enumerate(expected):
        result = cli_runs[1][f"bad{k}"].result()
        assert text in assert_one_line_error(result.returncode, result.stderr, prog)
