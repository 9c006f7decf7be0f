"""Entry points for your own pair: ``assert_step_parity`` for a test suite, ``python -m parity check``.

``assert_step_parity(...)`` takes :func:`parity.generic.step_parity`'s arguments and raises an
``AssertionError`` whose message is the verdict, the table and the notes when a quantity is
outside tolerance; it returns the comparison when all pass. Use it in pytest::

    from parity.check import assert_step_parity

    def test_my_port():
        assert_step_parity(keras_model, keras_loss, keras_optimizer,
                           torch_module, torch_loss, torch_optimizer, batches, steps=5)

``python -m parity check FILE.py`` imports ``FILE.py`` and calls its function ``pair()`` (or
``--function NAME``), which returns a :class:`Pair` (or a dict with its field names): the two
models, their losses and optimizers, the batches and, optionally, ``step_parity``'s options.
It prints the table and the verdict, writes ``parity.json`` and ``parity.png`` into ``--out DIR``
and exits 0 when every quantity is within tolerance, 1 when not, 2 with one line for a file
that cannot be used (missing, raises, returns the wrong thing, batches that do not fit).
With ``--mode both`` the function is called once per mode (training changes the models).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import traceback
from dataclasses import dataclass, field, fields
from pathlib import Path

from parity.compare import MODES, Comparison
from signs.cli import ArgumentParser, positive_int
from signs.errors import InputError
from signs.files import atomic_write

DEFAULT_FUNCTION = "pair"


@dataclass
class Pair:
    """What ``FILE.py``'s function returns: a Keras model and its torch port, ready to train.

    ``keras_loss(y_true, y_pred)`` and ``torch_loss(output, target)``; ``torch_optimizer`` built
    on ``torch_module``'s parameters; ``batches``: ``(x, y)`` NumPy pairs in Keras's layout.
    ``options``: further keywords of :func:`parity.generic.step_parity` (``steps``,
    ``input_layout``, ``tolerances``, ``name_map``, ``flatten_shapes``, ``transfer``).
    """

    keras_model: object
    keras_loss: object
    keras_optimizer: object
    torch_module: object
    torch_loss: object
    torch_optimizer: object
    batches: list
    options: dict = field(default_factory=dict)


def _failure_message(result: Comparison) -> str:
    lines = [result.verdict(), result.table()]
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


def assert_step_parity(*args, **kwargs) -> Comparison:
    """:func:`parity.generic.step_parity`, raising ``AssertionError`` (verdict, table, notes)
    unless every quantity is within tolerance."""
    from parity.generic import step_parity

    result = step_parity(*args, **kwargs)
    if not result.passed:
        raise AssertionError(_failure_message(result))
    return result


def load_pair_function(path, function: str = DEFAULT_FUNCTION):
    """Import ``path`` and return its function ``function``; one-line :class:`InputError` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix != ".py":
        raise InputError(f"{path}: expected a Python file (.py) defining {function}()")
    spec = importlib.util.spec_from_file_location(f"parity_check_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file: any error is theirs to see, in one line
        raise InputError(f"{path}: importing it raised {_where(exc, path)}") from None
    target = getattr(module, function, None)
    if not callable(target):
        raise InputError(f"{path}: defines no function {function}() (use --function NAME for another name)")
    return target


def call_pair(target, path, function: str = DEFAULT_FUNCTION) -> Pair:
    """Call ``FILE.py``'s function and check what it returned."""
    try:
        value = target()
    except Exception as exc:
        raise InputError(f"{path}: {function}() raised {_where(exc, path)}") from None
    if isinstance(value, dict):
        names = {f.name for f in fields(Pair)}
        missing = [f.name for f in fields(Pair) if f.name not in value and f.name != "options"]
        unknown = sorted(set(value) - names)
        if missing or unknown:
            raise InputError(f"{path}: {function}() returned a dict with missing keys {missing or 'none'} "
                             f"and unknown keys {unknown or 'none'}; expected {', '.join(sorted(names))}")
        value = Pair(**value)
    if not isinstance(value, Pair):
        raise InputError(f"{path}: {function}() returned {type(value).__name__}; expected parity.check.Pair "
                         "or a dict with keras_model, keras_loss, keras_optimizer, torch_module, torch_loss, "
                         "torch_optimizer, batches")
    if not isinstance(value.options, dict):
        raise InputError(f"{path}: {function}() returned options of type {type(value.options).__name__}; "
                         "expected a dict of step_parity keywords")
    return value


def _where(exc: BaseException, path) -> str:
    """``ValueError: ... (at FILE.py:12)``: the exception and the last line of ``path`` it passed."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if Path(frame.filename).resolve() == Path(path).resolve()]
    at = f" (at {Path(path).name}:{frames[-1].lineno})" if frames else ""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}{': ' + message if message else ''}{at}"


def run_check(pair: Pair, mode: str, steps: int | None, path) -> Comparison:
    """step_parity on ``pair``; errors of the models on the batches become one line."""
    from parity.generic import step_parity

    options = dict(pair.options)
    if steps is not None:
        options["steps"] = steps
    try:
        return step_parity(pair.keras_model, pair.keras_loss, pair.keras_optimizer, pair.torch_module,
                           pair.torch_loss, pair.torch_optimizer, pair.batches, mode=mode, **options)
    except InputError:
        raise
    except TypeError as exc:
        raise InputError(f"{path}: {_where(exc, path)}; check the options returned with the pair") from None
    except Exception as exc:  # a model that cannot take its batches, a loss of the wrong shape, ...
        raise InputError(f"{path}: training the pair on its batches failed: {_where(exc, path)} (do the "
                         "batches fit both models? x in Keras's layout, y as the losses expect)") from None


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m parity check", description=__doc__)
    parser.add_argument("file", metavar="FILE.py",
                        help="defines pair() returning a parity.check.Pair or a dict")
    parser.add_argument("--function", default=DEFAULT_FUNCTION,
                        help=f"the function to call (default: {DEFAULT_FUNCTION})")
    parser.add_argument("--mode", choices=(*MODES, "both"), default="teacher-forced",
                        help="teacher-forced (default: each step's own error), free-running (the drift) "
                        "or both")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="steps to compare (default: the pair's options, else every batch)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write parity.json and parity.png (parity-<mode>.* with --mode both) here")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    target = load_pair_function(args.file, args.function)
    modes = MODES if args.mode == "both" else (args.mode,)
    passed = True
    for mode in modes:
        pair = call_pair(target, args.file, args.function)
        result = run_check(pair, mode, args.steps, args.file)
        print(result.table())
        for note in result.notes:
            print(f"note: {note}")
        print(result.verdict(f"{Path(args.file).name}: Keras vs torch"))
        passed = passed and result.passed
        if out is not None:
            stem = "parity" if len(modes) == 1 else f"parity-{mode}"
            text = json.dumps(result.to_json(file=str(args.file)), indent=1) + "\n"
            atomic_write(out / f"{stem}.json", lambda handle, text=text: handle.write(text.encode()))
            result.plot(out / f"{stem}.png")
            print(f"wrote {out / (stem + '.json')}, {out / (stem + '.png')}", file=sys.stderr)
    return 0 if passed else 1
