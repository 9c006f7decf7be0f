"""``python -m benchmarks``: see :mod:`benchmarks.cli`."""

from benchmarks.cli import entry

raise SystemExit(entry())
