"""Bad input at every entry point: one line naming the input and the problem, exit 2, nothing lost.

Entry points: the loader API (``signs.data.read_split`` / ``load_from`` / ``load_dataset``), and
the CLIs ``python -m torch_port.train`` (incl. ``--resume`` and ``--predict``),
``python -m tf_original.train`` and ``python -m parity report``. Each bad data file is put as
``train_signs.h5`` into a directory next to a good (synthetic) ``test_signs.h5`` so the loader
reaches it. The CLIs run in-process through ``run_main`` (what their ``__main__`` blocks call;
cheap), and a handful of cases through real subprocesses, started together, to prove the wiring.
Every CLI case pre-fills the output locations and checks they are byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from signs_testing import REPO_ROOT, assert_one_line_error, cli_env, small_split, write_split

if str(REPO_ROOT) not in sys.path:  # ``parity`` is not in an older editable install's package list
    sys.path.insert(0, str(REPO_ROOT))

torch = pytest.importorskip("torch")

from signs.cli import run_main  # noqa: E402
from signs.data import load_dataset, load_from, read_split  # noqa: E402
from signs.errors import DataError, InputError  # noqa: E402
from signs.weights import PARAMETER_SHAPES, load_initial_parameters  # noqa: E402
from tf_original import train as tf_train  # noqa: E402  (no TensorFlow until the data is good)
from torch_port import checkpoint as ckpt  # noqa: E402
from torch_port import train as torch_train  # noqa: E402
from torch_port.optim import make_optimizer  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

PROGS = {"torch": "python -m torch_port.train", "tf": "python -m tf_original.train",
         "report": "python -m parity report"}


# --------------------------------------------------------------------------- bad data files

def _h5(**overrides):
    """Builder of a small train file (12 images) with some of its parts replaced."""
    def build(path: Path):
        images, labels = small_split(12, seed=5)
        parts = {"images": images, "labels": labels, "classes": None, "keys": None, **overrides}
        for name in ("images", "labels"):
            if callable(parts[name]):
                parts[name] = parts[name](images if name == "images" else labels)
        write_split(path, "train", parts["images"], parts["labels"], parts["classes"], parts["keys"])
    return build


def _bytes(content: bytes):
    def build(path: Path):
        path.write_bytes(content)
    return build


def _truncated(path: Path):
    _h5()(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _directory(path: Path):
    path.mkdir()


BAD_TRAIN = {  # name: (builder of BADDIR/train_signs.h5, what the message must say)
    "empty file": (_bytes(b""), "file is empty"),
    "truncated hdf5": (_truncated, "truncated or corrupt"),
    "text file named .h5": (_bytes(b"train_set_x,train_set_y\n1,2\n"), "not an HDF5 file"),
    "missing key": (_h5(keys=("train_set_x", "list_classes")), "missing dataset 'train_set_y'"),
    "images 32x32": (_h5(images=lambda x: x[:, :32, :32]), "expected (m, 64, 64, 3)"),
    "images grey": (_h5(images=lambda x: x[..., 0]), "expected (m, 64, 64, 3)"),
    "images float": (_h5(images=lambda x: x.astype(np.float32)), "dtype float32"),
    "label 6": (_h5(labels=lambda y: np.where(y == 0, 6, y)), "outside 0..5"),
    "label -1": (_h5(labels=lambda y: np.where(y == 0, -1, y)), "outside 0..5"),
    "float labels": (_h5(labels=lambda y: y.astype(np.float64)), "integer labels"),
    "empty set": (_h5(images=lambda x: x[:0], labels=lambda y: y[:0]), "empty (0 images)"),
    "fewer labels than images": (_h5(labels=lambda y: y[:10]), "12 images but 10 labels"),
    "five classes": (_h5(classes=np.arange(5)), "list_classes has shape"),
    "other class list": (_h5(classes=np.arange(1, 7)), "different classes"),
    "a directory": (_directory, "is a directory"),
}


@pytest.fixture(scope="module")
def bad_dirs(tmp_path_factory, synthetic_dir):
    """For each case a BADDIR with the bad ``train_signs.h5`` and a good synthetic test file."""
    root = tmp_path_factory.mktemp("bad-data")
    dirs = {}
    for index, (case, (build, _)) in enumerate(BAD_TRAIN.items()):
        directory = root / f"case{index}"
        directory.mkdir()
        shutil.copyfile(synthetic_dir / "test_signs.h5", directory / "test_signs.h5")
        build(directory / "train_signs.h5")
        dirs[case] = directory
    only_test = root / "only-test"
    only_test.mkdir()
    shutil.copyfile(synthetic_dir / "test_signs.h5", only_test / "test_signs.h5")
    dirs["only-test"] = only_test
    return dirs


def _culprit(case, directory: Path) -> str:
    """What the message must name: the directory for a class mismatch, else the bad file."""
    return str(directory) if case == "other class list" else str(directory / "train_signs.h5")


@pytest.mark.parametrize("case", list(BAD_TRAIN))
def test_loader_api_rejects(case, bad_dirs):
    directory, expected = bad_dirs[case], BAD_TRAIN[case][1]
    calls = [lambda: load_from(directory), lambda: load_dataset(directory, "signs", notify=None),
             lambda: load_dataset(directory, "auto", notify=None)]
    if case != "other class list":
        calls.append(lambda: read_split(directory / "train_signs.h5"))
    for call in calls:
        with pytest.raises(DataError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and expected in message and _culprit(case, directory) in message, message


def test_loader_api_missing_directory_and_file(tmp_path, bad_dirs):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nowhere", "signs", notify=None)
    with pytest.raises(DataError, match="missing train_signs.h5"):
        load_dataset(bad_dirs["only-test"], "signs", notify=None)
    with pytest.raises(DataError, match="no such file"):
        read_split(tmp_path / "train_signs.h5")


# --------------------------------------------------------------------------- CLI harness

def _digests(paths) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture
def outputs(tmp_path, real_checkpoint):
    """An output directory already holding a previous run's files; returns (dir, files)."""
    out = tmp_path / "out"
    out.mkdir()
    shutil.copyfile(real_checkpoint, out / "checkpoint.pt")
    (out / "weights.npz").write_bytes(b"previous weights")
    (out / "metrics.json").write_bytes(b'{"format_version": 1, "previous": true}\n')
    (out / "costs.png").write_bytes(b"previous plot")
    (out / "report.json").write_bytes(b'{"previous": true}\n')
    return out, sorted(out.iterdir())


def _cli_argv(cli: str, out: Path, argv: list[str]) -> list[str]:
    """Complete ``argv`` with each CLI's output options pointing at the pre-filled files."""
    if cli == "torch":
        return [*argv, "--out", str(out), "--quiet", "--epochs", "1"]
    if cli == "tf":
        return [*argv, "--save-weights", str(out / "weights.npz"), "--plot", str(out / "costs.png"),
                "--quiet", "--epochs", "1"]
    return ["report", *argv, "--pair", "line-by-line:idiomatic", "--steps", "1",
            "--json", str(out / "report.json"), "--plot", str(out / "costs.png")]


def _run_inprocess(cli: str, argv, capsys) -> tuple[int, str]:
    from parity.__main__ import main as parity_main

    main = {"torch": torch_train.main, "tf": tf_train.main, "report": parity_main}[cli]
    try:
        status = run_main(main, [str(a) for a in argv])
    except SystemExit as exc:  # argparse errors
        status = exc.code
    return status, capsys.readouterr().err


def check_cli(cli, argv, expected, outputs, capsys) -> str:
    out, files = outputs
    before = _digests(files)
    status, err = _run_inprocess(cli, _cli_argv(cli, out, argv), capsys)
    line = assert_one_line_error(status, err, PROGS[cli])
    for text in expected:
        assert text in line, line
    assert _digests(files) == before, "an existing output file was changed"
    assert sorted(out.iterdir()) == files, "files appeared in or vanished from --out"
    return line


# --------------------------------------------------------------------------- data through the CLIs

@pytest.mark.parametrize("cli", ["torch", "tf", "report"])
@pytest.mark.parametrize("case", list(BAD_TRAIN))
def test_cli_rejects_bad_train_file(cli, case, bad_dirs, outputs, capsys):
    directory = bad_dirs[case]
    check_cli(cli, ["--data", "signs", "--data-dir", directory],
              [BAD_TRAIN[case][1], _culprit(case, directory)], outputs, capsys)


@pytest.mark.parametrize("cli", ["torch", "tf", "report"])
def test_cli_rejects_missing_data(cli, bad_dirs, tmp_path, outputs, capsys):
    nowhere = tmp_path / "nowhere"
    check_cli(cli, ["--data-dir", nowhere], [str(nowhere), "does not exist"], outputs, capsys)
    check_cli(cli, ["--data", "signs", "--data-dir", bad_dirs["only-test"]],
              [str(bad_dirs["only-test"]), "missing train_signs.h5"], outputs, capsys)


# --------------------------------------------------------------------------- --resume

@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory):
    """A genuine checkpoint (initial weights, a fresh TF-style Adam), as the CLI writes them."""
    params = {k: torch.tensor(v, requires_grad=True) for k, v in load_initial_parameters("float32").items()}
    optimizer = make_optimizer("tf-adam", list(params.values()), 0.0001)
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    settings = {"impl": "line-by-line", "optimizer_name": "tf-adam", "dtype": "float32", "lr": 0.0001,
                "batch_size": 32, "seed": 3, "num_epochs": 1}
    return ckpt.save_checkpoint(path, epoch=1, parameters={k: v.detach() for k, v in params.items()},
                                optimizer=optimizer, costs=[1.8], settings=settings)


def _payload(**overrides):
    payload = {"format_version": ckpt.FORMAT_VERSION, "architecture": ckpt.ARCHITECTURE, "epoch": 1,
               "parameters": {k: torch.zeros(s) for k, s in PARAMETER_SHAPES.items()},
               "optimizer": {}, "costs": [], "settings": {}}
    payload.update(overrides)
    return payload


BAD_CHECKPOINTS = {  # name: (writer(path, real_checkpoint), what the message must say)
    "empty": (lambda p, real: p.write_bytes(b""), "empty"),
    "random bytes": (lambda p, real: p.write_bytes(np.random.default_rng(0).bytes(4096)),
                     "not a readable checkpoint"),
    "truncated": (lambda p, real: p.write_bytes(real.read_bytes()[: real.stat().st_size // 2]),
                  "not a readable checkpoint"),
    "text": (lambda p, real: p.write_text("epoch=3\n"), "not a readable checkpoint"),
    "unsafe pickle": (lambda p, real: torch.save({"format_version": 1, "path": Path("/etc")}, p),
                      "not a readable checkpoint"),
    "plain tensor": (lambda p, real: torch.save(torch.zeros(3), p), "no format_version"),
    "newer format": (lambda p, real: torch.save(_payload(format_version=ckpt.FORMAT_VERSION + 1), p),
                     "newer than this program"),
    "other architecture": (lambda p, real: torch.save(_payload(architecture="resnet-18"), p),
                           "architecture 'resnet-18'"),
    "other layer sizes": (lambda p, real: torch.save(_payload(parameters={
        **{k: torch.zeros(s) for k, s in PARAMETER_SHAPES.items()}, "W2": torch.zeros(12, 50)}), p),
        "W2 has shape"),
    "other parameter names": (
        lambda p, real: torch.save(_payload(parameters={"fc1.weight": torch.zeros(2)}), p), "not W1, b1"),
    "no optimizer state": (lambda p, real: torch.save(
        {k: v for k, v in _payload().items() if k != "optimizer"}, p), "lacks 'optimizer'"),
}


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_resume_rejects_bad_checkpoint(case, real_checkpoint, synthetic_dir, tmp_path, outputs, capsys):
    write, expected = BAD_CHECKPOINTS[case]
    path = tmp_path / "bad.pt"
    write(path, real_checkpoint)
    with pytest.raises(InputError, match="bad.pt"):
        ckpt.load_checkpoint(path)
    check_cli("torch", ["--resume", path, "--data-dir", synthetic_dir], [str(path), expected],
              outputs, capsys)


def test_resume_missing_checkpoint(tmp_path, synthetic_dir, outputs, capsys):
    for path in (tmp_path / "nowhere.pt", tmp_path):
        check_cli("torch", ["--resume", path, "--data-dir", synthetic_dir],
                  [str(path), "no such checkpoint"], outputs, capsys)


# --------------------------------------------------------------------------- --predict

def _png_header_only(path: Path, width: int, height: int):
    """A PNG whose header claims ``width`` x ``height`` (valid CRC) and whose data is junk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"junk")
                     + chunk(b"IEND", b""))


def _truncated_png(path: Path):
    from PIL import Image

    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:2000])


BAD_IMAGES = {
    "missing": (lambda p: None, "no such image file"),
    "empty": (lambda p: p.write_bytes(b""), "not a readable image"),
    "text named .png": (lambda p: p.write_text("a thumbs-up, honestly\n"), "not a readable image"),
    "truncated png": (_truncated_png, "not a readable image"),
    "huge": (lambda p: _png_header_only(p, 10_000, 6_000), "10000x6000, larger than"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_predict_rejects_bad_image(case, synthetic_dir, tmp_path, outputs, capsys):
    build, expected = BAD_IMAGES[case]
    path = tmp_path / "photo.png"
    build(path)
    check_cli("torch", ["--predict", path, "--data-dir", synthetic_dir], [str(path), expected],
              outputs, capsys)


# --------------------------------------------------------------------------- nonsense values

NONSENSE = {
    "torch": [["--epochs", "many"], ["--epochs", "-2"], ["--lr", "inf"], ["--lr", "-1e-3"],
              ["--batch-size", "0"], ["--batch-size", "2.5"], ["--seed", "abc"], ["--dtype", "float16"],
              ["--impl", "tf1"], ["--optimizer", "sgd"], ["--device", "gpu0"], ["--threads", "-1"],
              ["--checkpoint-every", "x"], ["--data", "mnist"], ["--no-such-option", "1"],
              ["--plain-loop"], ["--on-write-error", "ignore"]],
    "tf": [["--epochs", "1.5"], ["--lr", "nan"], ["--lr", "0"], ["--batch-size", "-32"],
           ["--impl", "torch"], ["--dtype", "half"], ["--data", "cifar"], ["--weights-of", "x"]],
    "report": [["--steps", "0"], ["--steps", "lots"], ["--lr", "-inf"], ["--batch-size", "0"],
               ["--dtype", "int8"], ["--mode", "sideways"], ["--torch-optimizer", "sgd"],
               ["--device", "tpu"], ["--seed", "1e3"], ["--data", "mnist"]],
}


@pytest.mark.parametrize("cli,argv", [(cli, argv) for cli, cases in NONSENSE.items() for argv in cases],
                         ids=lambda value: value if isinstance(value, str) else "=".join(value))
def test_cli_rejects_nonsense_value(cli, argv, synthetic_dir, outputs, capsys):
    check_cli(cli, [*argv, "--data-dir", synthetic_dir], [argv[0]], outputs, capsys)


REFUSED_COMBINATIONS = {  # options each valid alone: (argv, what the line must say)
    "fast has no torch.optim.Adam": (["--optimizer", "adam"], ["fast implements only", "'adam'"]),
    "fast has no torch.optim.Adam, named": (["--impl", "fast", "--optimizer", "adam"], ["--impl idiomatic"]),
    "line-by-line keeps the original's cost": (["--impl", "line-by-line", "--epoch-cost", "mean"],
                                               ["--epoch-cost mean", "line-by-line"]),
}


@pytest.mark.parametrize("case", list(REFUSED_COMBINATIONS))
def test_torch_cli_refuses_combination(case, synthetic_dir, outputs, capsys):
    argv, expected = REFUSED_COMBINATIONS[case]
    check_cli("torch", [*argv, "--data-dir", synthetic_dir], expected, outputs, capsys)


@pytest.mark.parametrize("pair", ["fast:fast", "fast", "tf1:pytorch", "tf1:fast:keras"])
def test_report_rejects_bad_pair(pair, synthetic_dir, outputs, capsys):
    out, _ = outputs
    argv = ["report", "--pair", pair, "--data-dir", synthetic_dir, "--json", out / "report.json"]
    status, err = _run_inprocess("report", argv, capsys)
    assert f"--pair {pair!r}" in assert_one_line_error(status, err, PROGS["report"])


def test_parity_rejects_unknown_command(capsys):
    status, err = _run_inprocess("report", ["reprot", "--steps", "1"], capsys)
    assert "'reprot'" in assert_one_line_error(status, err, "python -m parity")


def test_parity_without_a_command_is_one_line(capsys):
    status, err = _run_inprocess("report", [], capsys)
    assert "missing command" in assert_one_line_error(status, err, "python -m parity")


# --------------------------------------------------------------------------- real subprocesses

def test_real_subprocesses(bad_dirs, real_checkpoint, tmp_path):
    """A few of the cases above through ``python -m ...``: the ``__main__`` wiring, started together."""
    import subprocess

    newer = tmp_path / "newer.pt"
    torch.save(_payload(format_version=ckpt.FORMAT_VERSION + 1), newer)
    huge = tmp_path / "huge.png"
    _png_header_only(huge, 12_000, 5_000)
    truncated, labels = bad_dirs["truncated hdf5"], bad_dirs["label 6"]
    cases = [  # (cli, module args, what the line must contain)
        ("torch", ["torch_port.train", "--data", "signs", "--data-dir", truncated],
         [str(truncated / "train_signs.h5"), "truncated or corrupt"]),
        ("torch", ["torch_port.train", "--resume", newer, "--data-dir", labels], [str(newer), "newer"]),
        ("torch", ["torch_port.train", "--predict", huge, "--data", "synthetic"], [str(huge), "larger than"]),
        ("tf", ["tf_original.train", "--data", "signs", "--data-dir", labels],
         [str(labels / "train_signs.h5"), "outside 0..5"]),
        ("report", ["parity", "--data", "signs", "--data-dir", bad_dirs["text file named .h5"]],
         ["not an HDF5 file"]),
        ("report", ["parity", "--steps", "-4"], ["--steps"]),
        # the default pair, tf1:torch: the data must be refused before TensorFlow starts (and logs)
        ("report-tf", ["parity", "--data", "signs", "--data-dir", labels], [str(labels), "outside 0..5"]),
    ]
    runs = []
    for index, (cli, args, expected) in enumerate(cases):
        out = tmp_path / f"out{index}"
        out.mkdir()
        for name in ("weights.npz", "metrics.json", "costs.png", "report.json"):
            (out / name).write_bytes(f"previous {name}".encode())
        shutil.copyfile(real_checkpoint, out / "checkpoint.pt")
        files = sorted(out.iterdir())
        module, rest = args[0], args[1:]
        if cli == "report-tf":
            cli, rest = "report", ["report", *rest, "--json", out / "report.json"]
        elif cli == "report":
            rest = ["report", *rest, "--pair", "line-by-line:idiomatic", "--json", out / "report.json"]
        elif cli == "torch":
            rest = [*rest, "--out", out, "--quiet"]
        else:
            rest = [*rest, "--save-weights", out / "weights.npz", "--plot", out / "costs.png"]
        argv = [sys.executable, "-m", module, *map(str, rest)]
        process = subprocess.Popen(argv, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        runs.append((process, cli, expected, out, files, _digests(files)))
    for process, cli, expected, out, files, before in runs:
        _, err = process.communicate(timeout=120)
        line = assert_one_line_error(process.returncode, err, PROGS[cli])
        for text in expected:
            assert text in line, line
        assert _digests(files) == before and sorted(out.iterdir()) == files
