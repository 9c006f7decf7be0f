"""``assert_step_parity`` and ``python -m parity check FILE.py``: pass, fail, and bad files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("tensorflow", reason="TensorFlow is not installed: the Keras side needs it")

from parity.check import assert_step_parity, main  # noqa: E402
from signs.cli import run_main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# A small Keras classifier and the torch twin a porting user writes, float64, SGD.
PAIR = textwrap.dedent('''
    import keras
    import numpy as np
    import torch
    from torch import nn

    from parity.check import Pair
    from parity.generic import torch_optimizer_like

    def pair():
        keras_model = keras.Sequential([keras.Input((5,), dtype="float64"),
                                        keras.layers.Dense(4, activation="relu", dtype="float64"),
                                        keras.layers.Dense(3, dtype="float64")])
        torch_module = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)).double()
        optimizer = keras.optimizers.SGD(learning_rate=0.1)
        rng = np.random.default_rng(0)
        batches = [(rng.standard_normal((6, 5)), rng.integers(0, 3, 6)) for _ in range(3)]
        return Pair(keras_model,
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64"),
                    optimizer, torch_module, nn.CrossEntropyLoss(),
                    torch_optimizer_like(optimizer, torch_module.parameters()), batches{options})
''')


def write(tmp_path, text: str, name: str = "my_pair.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def check(capsys, *args) -> tuple[int, str, str]:
    status = run_main(main, [str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_good_pair_passes_and_writes_json_and_plot(tmp_path, capsys):
    path = write(tmp_path, PAIR.format(options=""))
    status, out, err = check(capsys, path, "--mode", "both", "--out", tmp_path / "out")
    assert status == 0, out + err
    assert out.count("PASS: my_pair.py: Keras vs torch, float64") == 2
    for mode in ("teacher-forced", "free-running"):
        figures = json.loads((tmp_path / "out" / f"parity-{mode}.json").read_text())
        assert figures["passed"] is True and figures["mode"] == mode and figures["steps_run"] == 3
        assert (tmp_path / "out" / f"parity-{mode}.png").stat().st_size > 1000


def test_a_wrong_twin_fails_with_exit_1(tmp_path, capsys):
    # the torch side trains with twice the learning rate: params fail, the forward pass does not
    text = PAIR.format(options="").replace("torch_optimizer_like(optimizer, torch_module.parameters())",
                                           "torch.optim.SGD(torch_module.parameters(), lr=0.2)")
    status, out, _ = check(capsys, write(tmp_path, text), "--mode", "free-running")
    assert status == 1
    assert "FAIL: my_pair.py" in out and "params" in out.splitlines()[-1]


def test_assert_step_parity_raises_with_the_table(tmp_path):
    namespace: dict = {}
    exec(compile(PAIR.format(options=""), "pair.py", "exec"), namespace)  # noqa: S102 (our own text)
    pair = namespace["pair"]()
    result = assert_step_parity(pair.keras_model, pair.keras_loss, pair.keras_optimizer, pair.torch_module,
                                pair.torch_loss, pair.torch_optimizer, pair.batches)
    assert result.passed and len(result.steps) == 3
    pair = namespace["pair"]()
    bad = __import__("torch").optim.SGD(pair.torch_module.parameters(), lr=0.3)
    with pytest.raises(AssertionError) as failure:
        assert_step_parity(pair.keras_model, pair.keras_loss, pair.keras_optimizer, pair.torch_module,
                           pair.torch_loss, bad, pair.batches)
    message = str(failure.value)
    assert message.startswith("FAIL: Keras vs torch, float64 teacher-forced, 3 steps: "
                              "outside tolerance: params")
    assert "max rel diff" in message  # the table


@pytest.mark.parametrize("text,needle", [
    (None, "no such file"),
    ("import numpy\nraise ValueError('no data here')\n",
     "importing it raised ValueError: no data here (at bad.py:2)"),
    ("def other():\n    pass\n", "defines no function pair()"),
    ("def pair():\n    return 42\n", "returned int; expected parity.check.Pair"),
    ("def pair():\n    return {'keras_model': 1}\n", "missing keys ['keras_loss'"),
    ("def pair():\n    raise RuntimeError('boom')\n", "pair() raised RuntimeError: boom (at bad.py:2)"),
])
def test_bad_files_are_one_line_and_exit_2(tmp_path, capsys, text, needle):
    path = tmp_path / "bad.py" if text is None else write(tmp_path, text, "bad.py")
    status, out, err = check(capsys, path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1, err
    assert needle in lines[0] and str(path) in lines[0]


def test_batches_that_do_not_fit_are_one_line(tmp_path, capsys):
    text = PAIR.format(options="").replace("rng.standard_normal((6, 5))", "rng.standard_normal((6, 7))")
    status, _, err = check(capsys, write(tmp_path, text))
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1, err
    assert "do the batches fit both models?" in lines[0]


def test_the_command_line_end_to_end(tmp_path):
    """The real command: a bad file is one stderr line and exit 2, without a traceback."""
    done = subprocess.run([sys.executable, "-m", "parity", "check", str(tmp_path / "missing.py")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.strip()] == \
        [f"error: {tmp_path / 'missing.py'}: no such file"]
