"""Golden TensorFlow traces: committed, so machines without TensorFlow (the GPU machine) can
still compare the port against the original.

``python -m parity golden`` (``make golden``) rewrites ``parity/golden/tf1_<dtype>.npz`` from
live TF1 runs; the CPU tests check that the committed files still match live TF, so they can't
rot. What is kept, per dtype (defaults of :data:`GOLDEN_CONFIG`):

* every step's cost and mini-batch for ``LONG_EPOCHS`` epochs (the scalar summary of a longer run);
* steps 1..``FULL_STEPS`` in full, and the parameters and moments at every epoch's end;
* "in full" means every tensor whole except the four W1-shaped ones (W1, dW1, m and v of W1,
  307,200 entries each, 10 MB per step in float64): of those a fixed sample of
  ``SAMPLE_SIZE`` entries is kept, the same entries on both sides of a comparison.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from parity.trace import STATE, Data, RunConfig, Trace, run
from signs.data import load_tutorial_arrays
from signs.files import atomic_write
from signs.weights import PARAMETER_SHAPES

GOLDEN_DIR = Path(__file__).with_name("golden")
FORMAT_VERSION = 1
FULL_STEPS = 3
LONG_EPOCHS = 10
STEPS_PER_EPOCH = 34  # 1080 examples in batches of 32: 33 full + 1 of 24
SAMPLE_SIZE = 4096
SAMPLED = "W1"


def golden_config(dtype: str) -> RunConfig:
    return RunConfig(steps=LONG_EPOCHS * STEPS_PER_EPOCH, dtype=dtype, full_steps=FULL_STEPS,
                     every=STEPS_PER_EPOCH)


def sample_index() -> np.ndarray:
    """The fixed flat indices of W1-shaped tensors kept in the goldens (sorted, seed 0)."""
    size = int(np.prod(PARAMETER_SHAPES[SAMPLED]))
    return np.sort(np.random.default_rng(0).choice(size, SAMPLE_SIZE, replace=False))


def sampled(trace: Trace) -> Trace:
    """A copy of ``trace`` whose W1-shaped tensors are reduced to the golden sample."""
    index = sample_index()
    records = []
    for record in trace.records:
        record = dict(record)
        for quantity in STATE:
            if quantity in record:
                values = dict(record[quantity])
                values[SAMPLED] = np.asarray(values[SAMPLED]).reshape(-1)[index]
                record[quantity] = values
        records.append(record)
    return Trace(trace.impl, trace.config, records)


def path_for(dtype: str) -> Path:
    return GOLDEN_DIR / f"tf1_{dtype}.npz"


def data_fingerprint(data: Data) -> str:
    """sha256 of the training arrays, so a golden is never compared on other data."""
    digest = hashlib.sha256(np.ascontiguousarray(data.X_train).tobytes())
    digest.update(np.ascontiguousarray(data.Y_train).tobytes())
    return digest.hexdigest()


def save(trace: Trace, path, data: Data) -> Path:
    """Write a (sampled) trace as a compressed ``.npz``, atomically."""
    arrays = {"format_version": np.array(FORMAT_VERSION), "dtype": np.array(trace.config.dtype),
              "data_sha256": np.array(data_fingerprint(data)),
              "cost": np.array([r["cost"] for r in trace.records]),
              "epoch": np.array([r["epoch"] for r in trace.records]),
              "batch": np.stack([np.pad(r["batch"], (0, 32 - len(r["batch"])), constant_values=-1)
                                 for r in trace.records])}
    for record in trace.records:
        if "params" in record:
            prefix = f"step{record['step']}"
            arrays[f"{prefix}/output"] = record["output"]
            for quantity in STATE:
                for name, value in record[quantity].items():
                    arrays[f"{prefix}/{quantity}/{name}"] = value
    atomic_write(path, lambda handle: np.savez_compressed(handle, **arrays))
    return Path(path)


def load(path, data: Data, config: RunConfig | None = None) -> Trace:
    """Read a golden file back as a :class:`Trace` of the ``tf1`` implementation.

    Refuses (``ValueError``) a golden made on other training data than ``data``.
    """
    with np.load(path, allow_pickle=False) as archive:
        files = {key: archive[key] for key in archive.files}
    if str(files["data_sha256"]) != data_fingerprint(data):
        raise ValueError(f"{path}: made on other training data than this machine's synthetic set "
                         "(the synthetic generator's output changed?); regenerate with make golden")
    if int(files["format_version"]) > FORMAT_VERSION:
        version = int(files["format_version"])
        raise ValueError(f"{path}: golden format {version} is newer than {FORMAT_VERSION}")
    dtype = str(files["dtype"])
    records = []
    for k, (cost, epoch, batch) in enumerate(zip(files["cost"], files["epoch"], files["batch"])):
        step = k + 1
        record = {"step": step, "epoch": int(epoch), "batch": batch[batch >= 0], "cost": float(cost)}
        prefix = f"step{step}/"
        if prefix + "output" in files:
            record["output"] = files[prefix + "output"]
            for quantity in STATE:
                record[quantity] = {name: files[f"{prefix}{quantity}/{name}"] for name in PARAMETER_SHAPES}
        records.append(record)
    return Trace("tf1", config or golden_config(dtype), records)


def generate(dtype: str, data: Data | None = None) -> Trace:
    """A fresh golden trace from live TF1 (sampled), on the synthetic data."""
    data = data or load_tutorial_arrays("synthetic", notify=None)
    return sampled(run("tf1", data, golden_config(dtype)))


def write_all(dtypes=("float32", "float64")) -> list[Path]:
    data = load_tutorial_arrays("synthetic", notify=None)
    return [save(generate(dtype, data), path_for(dtype), data) for dtype in dtypes]
