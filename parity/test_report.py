"""``python -m parity report`` end to end: pass, fail, JSON fields, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def report(*args, tmp_path=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "parity", "report", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow", reason="TensorFlow is not installed: the report needs it")


def in_process(capsys, *args):
    """``python -m parity report ARGS`` in this process (the subprocess variant costs ~8 s of
    imports): ``(exit status, stdout)``."""
    from parity.report import main
    from signs.cli import run_main

    status = run_main(main, list(args))
    return status, capsys.readouterr().out


def test_unseen_settings_pass_and_json_has_the_fields(tf, tmp_path, capsys):
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    status, stdout = in_process(capsys, "--steps", "5", "--seed", "11", "--lr", "0.0007", "--batch-size",
                                "50", "--dtype", "float32", "--json", str(out), "--plot", str(plot))
    assert status == 0, stdout
    assert "PASS" in stdout and "max rel diff" in stdout
    result = json.loads(out.read_text())
    assert result["passed"] is True and result["dtype"] == "float32"
    assert result["mode"] == "teacher-forced"
    assert set(result["tolerances"]) == {"output", "cost", "grads", "params", "m", "v"}
    assert [s["step"] for s in result["steps"]] == [1, 2, 3, 4, 5]
    for step in result["steps"]:
        assert {"step", "cost_a", "cost_b", "max_abs_diff", "max_rel_diff"} <= set(step)
        assert set(step["max_rel_diff"]) == set(result["tolerances"])
    assert plot.stat().st_size > 1000


def test_torch_optim_adam_is_reported_as_failing(tf, tmp_path, capsys):
    out = tmp_path / "bad.json"
    status, stdout = in_process(capsys, "--steps", "3", "--torch-optimizer", "adam", "--json", str(out))
    assert status == 1, stdout
    assert "FAIL" in stdout
    params_row = next(line for line in stdout.splitlines() if line.startswith("params"))
    assert params_row.rstrip().endswith("FAIL")
    result = json.loads(out.read_text())
    assert result["passed"] is False and "params" in result["failing"]


@pytest.mark.parametrize("args,needle", [
    (["--pair", "tf1:jax"], "--pair"),
    (["--pair", "fast:fast"], "--pair"),
    (["--steps", "0"], "--steps"),
    (["--lr", "-1"], "--lr"),
    (["--dtype", "float16"], "--dtype"),
    (["--data", "signs", "--data-dir", "/nonexistent/dir"], "/nonexistent/dir"),
])
def test_bad_input_is_one_line_and_exit_2(args, needle):
    done = report(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], done.stderr
    assert "Traceback" not in done.stderr
