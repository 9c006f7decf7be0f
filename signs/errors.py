"""The exception every entry point turns into a one-line message: exit status 2 for bad input
(its subclasses elsewhere carry their own statuses: ``signs.files.WriteError`` 3,
``signs.runs.DirectoryInUse`` 4; see ``signs.cli.run_main`` and ``docs/errors.md``)."""


class InputError(Exception):
    """Bad input from the user: a file, a directory, a value.

    The message names the input and the problem, and says what to do, in one line.
    CLIs catch it (see :func:`signs.cli.run_main`) and exit with status 2 (or the status of the
    subclass).
    """


class DataError(InputError):
    """A data file or directory that cannot be used as SIGNS."""


class NonFiniteCost(InputError):
    """Training produced a NaN or infinite cost; names the epoch and step where it happened."""

    def __init__(self, epoch: int, step: int, value: float):
        self.epoch, self.step, self.value = epoch, step, value
        super().__init__(f"cost became {value} at epoch {epoch}, step {step} of that epoch; "
                         "training stopped (try a smaller --lr); the last checkpoint, if any, "
                         "is kept")
