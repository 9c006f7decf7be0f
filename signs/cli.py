"""Helpers shared by the command-line entry points of both sides (framework-free).

Exit statuses of every command that goes through :func:`run_main` (``docs/errors.md``):

====  ==========================================================================
0     done (``parity report``: within tolerance)
1     ``parity report``: outside tolerance; anything unexpected (a traceback)
2     bad input: one ``error:`` line naming the input (:class:`InputError`)
3     a file could not be written: one line naming it and the cause
      (:class:`signs.files.WriteError`); the previous file is kept
4     the output directory is in use by another run (:class:`signs.runs.DirectoryInUse`)
130   stopped by SIGINT (Ctrl-C); 143: by SIGTERM (128 + the signal's number). Training
      commands save a checkpoint first and say how to resume (:class:`signs.runs.Interrupted`)
====  ==========================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable

from signs.errors import InputError
from signs.files import WriteError
from signs.runs import DirectoryInUse, Interrupted, signal_name, signals_interrupt

EXIT_BAD_INPUT = 2
EXIT_WRITE_FAILED = 3
EXIT_DIRECTORY_IN_USE = 4


def exit_status_for_signal(signum: int) -> int:
    """The status after stopping on signal ``signum``: 128 + its number, as shells report."""
    return 128 + int(signum)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line (no usage block), exit status 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


@contextlib.contextmanager
def native_stderr_silenced():
    """Silence what native code writes to file descriptor 2 while the block runs.

    For ``import tensorflow``: TF 2.21 prints C++ start-up lines (absl, oneDNN, CUDA probing)
    that ``TF_CPP_MIN_LOG_LEVEL`` does not reach, which would put noise before a CLI's one-line
    error. Python exceptions raised inside the block are unaffected (they are printed later).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run ``main(argv)``; turn the expected failures into one ``error:`` line on stderr.

    :class:`InputError` -> 2, :class:`~signs.files.WriteError` -> 3,
    :class:`~signs.runs.DirectoryInUse` -> 4, :class:`~signs.runs.Interrupted` and a stop
    signal (SIGINT, or SIGTERM, which :func:`~signs.runs.signals_interrupt` turns into a
    ``KeyboardInterrupt`` while ``main`` runs) -> 128 + the signal's number.
    """
    try:
        with signals_interrupt():
            return main(argv)
    except Interrupted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_status_for_signal(exc.signum)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"error: stopped by {signal_name(signum)} before the end; files already written are "
              "complete (no partial files)", file=sys.stderr)
        return exit_status_for_signal(signum)
    except WriteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    except DirectoryInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DIRECTORY_IN_USE
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0 (a learning rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data options both training CLIs share."""
    parser.add_argument(
        "--data", choices=("auto", "synthetic", "signs"), default="auto",
        help="auto: the real SIGNS files if both are in the data directory, else the synthetic "
        "set; signs: require the real files; synthetic: always the synthetic set (default: auto)",
    )
    parser.add_argument(
        "--data-dir", default=None,
        help="directory holding train_signs.h5 and test_signs.h5 (default: $SIGNS_DIR, else ./datasets)",
    )


def add_training_arguments(parser: argparse.ArgumentParser, default_epochs: int | None = 1500,
                           default_dtype: str = "float32") -> None:
    """The hyper-parameter options of every command that trains the tutorial (defaults are the
    tutorial's). ``default_epochs=None`` leaves ``--epochs`` out (the parity report counts steps)."""
    if default_epochs is not None:
        parser.add_argument("--epochs", type=non_negative_int, default=default_epochs,
                            help=f"number of epochs (default: {default_epochs}"
                            + (", as the original)" if default_epochs == 1500 else ")"))
    parser.add_argument("--lr", type=positive_float, default=0.0001,
                        help="Adam learning rate (default: 0.0001)")
    parser.add_argument("--batch-size", type=positive_int, default=32,
                        help="mini-batch size (default: 32)")
    parser.add_argument("--seed", type=int, default=3,
                        help="data-order seed: epoch e (counted from 0) shuffles with "
                        "np.random.seed(seed + e + 1), as the original's seed = seed + 1 at each "
                        "epoch's start (default: 3; weights are always Glorot seed 1)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=default_dtype,
                        help=f"float32 (the tutorial's) or float64 (exact parity work) "
                        f"(default: {default_dtype})")
