"""Side-by-side speed of every implementation of the tutorial: ``python -m benchmarks``.

What is timed is the registry of implementations (``signs/implementations.py``). Modules:
:mod:`benchmarks.runner`
(epoch clock, alternating repeats, final costs), :mod:`benchmarks.floor` (the step's
unavoidable work), :mod:`benchmarks.scaling` (time per epoch vs width and batch size),
:mod:`benchmarks.report` (table and JSON), :mod:`benchmarks.cli` (the command line).
See ``benchmarks/README.md``.
"""
