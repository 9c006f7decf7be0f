"""Export weights from the TF side as ``.npz`` files the port can load.

``python -m tf_original.export --initial`` rewrites the stored Glorot seed-1 draw in
``signs/initial_weights/`` (float32 and float64) from live TensorFlow.

Each file is written atomically: one that cannot be written (no space, permission denied, a
read-only file system) is one error line naming it, exit status 3, the previous file kept.
"""

from __future__ import annotations

from signs.cli import ArgumentParser, native_stderr_silenced, run_main
from signs.weights import initial_weights_path, save_parameters


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m tf_original.export", description=__doc__)
    parser.add_argument("--initial", action="store_true",
                        help="rewrite the stored Glorot seed-1 draw (float32 and float64)")
    parser.add_argument("--out", default=None,
                        help="write the float32 initial draw to this .npz instead")
    args = parser.parse_args(argv)
    if not (args.initial or args.out):
        parser.error("nothing to do: pass --initial or --out PATH")
    with native_stderr_silenced():  # TensorFlow loads only once the arguments are good
        from tf_original.model import glorot_draw
    if args.out:
        print(save_parameters(args.out, glorot_draw("float32")))
    if args.initial:
        for dtype in ("float32", "float64"):
            print(save_parameters(initial_weights_path(dtype), glorot_draw(dtype)))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
