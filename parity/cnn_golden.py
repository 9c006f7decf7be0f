"""Golden Keras traces of the SIGNS CNN: the torch CNN can be checked where TensorFlow is absent.

``python -m parity.cnn_golden`` rewrites ``parity/golden/cnn_<dtype>.npz`` from live Keras
(``tf_original.cnn``); ``parity/test_cnn.py`` checks on CPU that the committed files still match
live Keras, so they cannot rot, and runs the torch CNN (CPU, and CUDA on a GPU machine)
against them. Each file holds, in torch's layout and names (:mod:`parity.generic`):

* ``initial/<name>``: the Keras-drawn initial weights, converted by :mod:`parity.layers`;
* ``step<k>/...``: the first :data:`STEPS` free-running Keras steps in full: ``cost``,
  ``output`` (64, 6), and ``grads``, ``params``, ``m``, ``v`` per parameter;
* ``data_sha256``: a fingerprint of the mini-batches, so a golden is never compared on other data.

The mini-batches are those of the first epoch of ``tf_original.cnn.model`` (seed 3 + 1) on the
synthetic SIGNS set, 64 images each.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from parity.generic import compare_records, run_torch
from signs import load_dataset, minibatch_indices
from signs.files import atomic_write

GOLDEN_DIR = Path(__file__).with_name("golden")
FORMAT_VERSION = 1
STEPS = 5
SEED = 4  # the first epoch of tf_original.cnn.model(seed=3): seed + epoch + 1
BATCH_SIZE = 64
QUANTITIES = ("grads", "params", "m", "v")


def path_for(dtype: str) -> Path:
    return GOLDEN_DIR / f"cnn_{dtype}.npz"


def batches(steps: int = STEPS, data_dir=None) -> list:
    """The first ``steps`` mini-batches ``(x (64, 64, 64, 3) float64 in [0, 1], y (64,) int64)``."""
    train_x, train_y, _, _, _ = load_dataset(data_dir, data="synthetic", notify=lambda _: None)
    X, Y = train_x / 255.0, train_y.reshape(-1)
    return [(X[index], Y[index]) for index in minibatch_indices(X.shape[0], BATCH_SIZE, SEED)[:steps]]


def fingerprint(batch_list: list) -> str:
    digest = hashlib.sha256()
    for x, y in batch_list:
        digest.update(np.ascontiguousarray(x, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return digest.hexdigest()


def generate(dtype: str, batch_list: list | None = None) -> tuple[dict, list]:
    """``(initial weights, Keras records)`` from live Keras, both in torch layout."""
    from parity.generic import run_keras
    from parity.layers import keras_state, match_layers
    from tf_original import cnn as keras_cnn
    from torch_port import cnn as torch_cnn

    batch_list = batch_list if batch_list is not None else batches()
    keras_net = keras_cnn.build_model(dtype)
    match = match_layers(keras_net, torch_cnn.build_model(dtype))
    match.raise_if_problems("Keras -> torch")
    initial = keras_state(match)
    records = run_keras(keras_net, keras_cnn.make_loss(dtype), keras_cnn.make_optimizer(), batch_list, match)
    return initial, records


def save(path, dtype: str, initial: dict, records: list, batch_list: list) -> Path:
    arrays = {"format_version": np.array(FORMAT_VERSION), "dtype": np.array(dtype),
              "data_sha256": np.array(fingerprint(batch_list))}
    arrays.update({f"initial/{name}": value for name, value in initial.items()})
    for record in records:
        prefix = f"step{record['step']}"
        arrays[f"{prefix}/cost"] = np.array(record["cost"])
        arrays[f"{prefix}/output"] = record["output"]
        for quantity in QUANTITIES:
            for name, value in record[quantity].items():
                arrays[f"{prefix}/{quantity}/{name}"] = value
    atomic_write(path, lambda handle: np.savez_compressed(handle, **arrays))
    return Path(path)


def load(path, batch_list: list) -> tuple[dict, list]:
    """``(initial weights, records)`` of a golden file; refuses (``ValueError``) other data or formats."""
    with np.load(path, allow_pickle=False) as archive:
        files = {key: archive[key] for key in archive.files}
    if int(files["format_version"]) > FORMAT_VERSION:
        version = int(files["format_version"])
        raise ValueError(f"{path}: golden format {version} is newer than {FORMAT_VERSION}")
    if str(files["data_sha256"]) != fingerprint(batch_list[:STEPS]):
        raise ValueError(f"{path}: made on other mini-batches than this machine's synthetic set (the "
                         "synthetic generator's output changed?); regenerate: python -m parity.cnn_golden")
    initial = {key.split("/", 1)[1]: value for key, value in files.items() if key.startswith("initial/")}
    records = []
    for step in range(1, STEPS + 1):
        prefix = f"step{step}/"
        record = {"step": step, "cost": float(files[prefix + "cost"]), "output": files[prefix + "output"]}
        for quantity in QUANTITIES:
            record[quantity] = {name: files[f"{prefix}{quantity}/{name}"] for name in initial
                                if f"{prefix}{quantity}/{name}" in files}
        records.append(record)
    return initial, records


def torch_against_golden(dtype: str, mode: str, tolerances: dict, device: str = "cpu",
                         steps: int = STEPS, batch_list: list | None = None):
    """The torch CNN on ``device``, from the golden's initial weights, against the golden's records."""
    from torch_port import cnn as torch_cnn

    batch_list = batch_list if batch_list is not None else batches()
    initial, records = load(path_for(dtype), batch_list)
    net = torch_cnn.build_model(dtype, initial=initial).to(device)
    optimizer = torch_cnn.make_optimizer(net.parameters())
    other = run_torch(net, torch_cnn.make_loss(dtype), optimizer, batch_list[:steps],
                      teacher=records if mode == "teacher-forced" else None, names=list(records[0]["params"]))
    return compare_records(records[:steps], other, tolerances, dtype=dtype, mode=mode)


def write_all(dtypes=("float32", "float64")) -> list[Path]:
    batch_list = batches()
    return [save(path_for(dtype), dtype, *generate(dtype, batch_list), batch_list) for dtype in dtypes]


if __name__ == "__main__":
    for written in write_all():
        print(f"wrote {written} ({written.stat().st_size:,} bytes)")
