"""The notebook's cost plot, written to a file (framework-free; both CLIs use it)."""

from __future__ import annotations

import io
from pathlib import Path

from signs.files import atomic_write


def plot_costs(costs, learning_rate: float, path, label: str | None = None) -> Path:
    """Cost every 5 epochs against "iterations (per fives)", titled with the learning rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot([float(c) for c in costs], label=label)
    axes.set_ylabel("cost")
    axes.set_xlabel("iterations (per fives)")
    axes.set_title("Learning rate =" + str(learning_rate))
    if label:
        axes.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))
    return Path(path)
