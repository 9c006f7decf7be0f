"""``python -m parity report ...`` (compare two implementations of the tutorial), ``python -m parity
check FILE.py`` (your own Keras model and torch port) and ``python -m parity golden``."""

from __future__ import annotations

import sys

from signs.cli import run_main

USAGE = """usage: python -m parity {report,check,golden} [options]

  report   run two implementations of the tutorial step by step and print how close they are
           (see report --help)
  check    train your own Keras model and its torch port side by side, from FILE.py's pair()
           (see check --help)
  golden   rewrite the golden traces in parity/golden/ (TF1 tutorial, Keras CNN) from live TensorFlow
"""


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    if not argv:
        print("python -m parity: error: missing command; expected report, check or golden (see --help)",
              file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "report":
        from parity.report import main as report_main
        return report_main(rest)
    if command == "check":
        from parity.check import main as check_main
        return check_main(rest)
    if command == "golden":
        if rest:
            print("python -m parity golden: takes no options", file=sys.stderr)
            return 2
        from parity.golden import write_all
        for path in write_all():
            print(f"wrote {path} ({path.stat().st_size:,} bytes)")
        return 0
    print(f"python -m parity: error: unknown command {command!r}; expected report, check or golden",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(run_main(main))
