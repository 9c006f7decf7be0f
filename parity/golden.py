"""Golden TensorFlow traces: committed, so machines without TensorFlow (the GPU machine) can still
compare the torch side against the original. One file format, two sets, one command.

``python -m parity golden`` (``make golden``) rewrites every file in ``parity/golden/`` from
live TensorFlow; the CPU tests check that the committed files still match live TF, so they
cannot rot.

**The format** (:func:`save`, :func:`load`; a compressed ``.npz``): ``format_version``,
``dtype``, ``data_sha256`` (a fingerprint of the data, so a golden is never compared on
other data); ``cost`` (every step's cost) and, where the records have them, ``epoch`` and
``batch`` (each step's example indices, padded with -1); ``initial/<name>`` (the initial
weights, where the set needs them); and, for the steps kept in full, ``step<k>/output`` and
``step<k>/<quantity>/<name>`` for ``grads``, ``params``, ``m``, ``v``.

**The sets:**

* ``tf1_<dtype>.npz``, the tutorial's TF1 original (:func:`tutorial_config`): every step's
  cost and mini-batch for ``LONG_EPOCHS`` epochs; steps 1..``FULL_STEPS`` in full, and the
  parameters and moments at every epoch's end; the four W1-shaped tensors (307,200 entries,
  10 MB per step in float64) reduced to a fixed sample of ``SAMPLE_SIZE`` entries, the same
  entries on both sides of a comparison (:func:`sampled`).
* ``cnn_<dtype>.npz``, the SIGNS CNN in Keras (``tf_original/cnn.py``), in torch's layout and
  names (:mod:`parity.generic`): its initial weights and its first ``CNN_STEPS`` free-running
  steps in full, on the first mini-batches of 64 of ``tf_original.cnn.model`` (seed 3 + 1).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from parity.compare import STATE
from parity.trace import Data, RunConfig, Trace, run
from signs import minibatch_indices
from signs.data import load_tutorial_arrays
from signs.files import atomic_write
from signs.weights import PARAMETER_SHAPES

GOLDEN_DIR = Path(__file__).with_name("golden")
FORMAT_VERSION = 1
REGENERATE = "regenerate with make golden (python -m parity golden)"


# --- the format ----------------------------------------------------------------------------

def fingerprint(*arrays) -> str:
    """sha256 of the arrays' bytes, in order."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def save(path, records: list, *, dtype: str, data_sha256: str, initial: dict | None = None) -> Path:
    """Write ``records`` (see :mod:`parity.compare`) and ``initial`` weights atomically."""
    arrays = {"format_version": np.array(FORMAT_VERSION), "dtype": np.array(dtype),
              "data_sha256": np.array(data_sha256), "cost": np.array([r["cost"] for r in records])}
    if all("epoch" in r and "batch" in r for r in records):
        width = max(len(r["batch"]) for r in records)
        arrays["epoch"] = np.array([r["epoch"] for r in records])
        arrays["batch"] = np.stack([np.pad(r["batch"], (0, width - len(r["batch"])), constant_values=-1)
                                    for r in records])
    arrays.update({f"initial/{name}": value for name, value in (initial or {}).items()})
    for record in records:
        if "params" in record:
            prefix = f"step{record['step']}"
            arrays[f"{prefix}/output"] = record["output"]
            for quantity in STATE:
                for name, value in record.get(quantity, {}).items():
                    arrays[f"{prefix}/{quantity}/{name}"] = value
    atomic_write(path, lambda handle: np.savez_compressed(handle, **arrays))
    return Path(path)


def load(path, data_sha256: str) -> tuple[str, dict, list]:
    """``(dtype, initial weights, records)`` of a golden file.

    Refuses (``ValueError``) a golden made on other data than ``data_sha256`` says, or in a
    newer format.
    """
    with np.load(path, allow_pickle=False) as archive:
        files = {key: archive[key] for key in archive.files}
    if int(files["format_version"]) > FORMAT_VERSION:
        version = int(files["format_version"])
        raise ValueError(f"{path}: golden format {version} is newer than {FORMAT_VERSION}")
    if str(files["data_sha256"]) != data_sha256:
        raise ValueError(f"{path}: made on other data than this machine's synthetic set (the synthetic "
                         f"generator's output changed?); {REGENERATE}")
    initial = {key.split("/", 1)[1]: value for key, value in files.items() if key.startswith("initial/")}
    records = []
    for k, cost in enumerate(files["cost"]):
        record = {"step": k + 1, "cost": float(cost)}
        if "epoch" in files:
            batch = files["batch"][k]
            record.update(epoch=int(files["epoch"][k]), batch=batch[batch >= 0])
        prefix = f"step{k + 1}/"
        if prefix + "output" in files:
            record["output"] = files[prefix + "output"]
            for quantity in STATE:
                values = {key[len(prefix) + len(quantity) + 1:]: value for key, value in files.items()
                          if key.startswith(f"{prefix}{quantity}/")}
                if values:
                    record[quantity] = values
        records.append(record)
    return str(files["dtype"]), initial, records


# --- the tutorial's TF1 original -------------------------------------------------------------

FULL_STEPS = 3
LONG_EPOCHS = 10
STEPS_PER_EPOCH = 34  # 1080 examples in batches of 32: 33 full + 1 of 24
SAMPLE_SIZE = 4096
SAMPLED = "W1"


def tutorial_config(dtype: str) -> RunConfig:
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
    return Trace(trace.impl, trace.config, records, trace.epoch_costs, trace.printed)


def tutorial_path(dtype: str) -> Path:
    return GOLDEN_DIR / f"tf1_{dtype}.npz"


def data_fingerprint(data: Data) -> str:
    """The fingerprint of the tutorial's training arrays."""
    return fingerprint(data.X_train, data.Y_train)


def load_tutorial(data: Data, dtype: str) -> Trace:
    """The committed TF1 golden for ``dtype`` as a :class:`Trace` of ``tf1``."""
    saved_dtype, _, records = load(tutorial_path(dtype), data_fingerprint(data))
    return Trace("tf1", tutorial_config(saved_dtype), records)


def generate_tutorial(dtype: str, data: Data | None = None) -> Trace:
    """A fresh golden trace from live TF1 (sampled), on the synthetic data."""
    data = data or load_tutorial_arrays(data="synthetic", notify=None)
    return sampled(run("tf1", data, tutorial_config(dtype)))


# --- the SIGNS CNN in Keras ----------------------------------------------------------------

CNN_STEPS = 5
CNN_SEED = 4  # the first epoch of tf_original.cnn.model(seed=3): seed + epoch + 1
CNN_BATCH_SIZE = 64


def cnn_path(dtype: str) -> Path:
    return GOLDEN_DIR / f"cnn_{dtype}.npz"


def cnn_batches(steps: int = CNN_STEPS, data_dir=None) -> list:
    """The first ``steps`` mini-batches ``(x (64, 64, 64, 3) float64 in [0, 1], y (64,) int64)``."""
    arrays = load_tutorial_arrays(data_dir, "synthetic", notify=None)
    X, Y = arrays.train_images / 255.0, arrays.train_labels
    return [(X[index], Y[index]) for index in minibatch_indices(X.shape[0], CNN_BATCH_SIZE, CNN_SEED)[:steps]]


def cnn_fingerprint(batch_list: list) -> str:
    return fingerprint(*(array for x, y in batch_list
                         for array in (np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64))))


def load_cnn(dtype: str, batch_list: list) -> tuple[dict, list]:
    """``(initial weights, records)`` of the committed CNN golden for ``dtype``."""
    _, initial, records = load(cnn_path(dtype), cnn_fingerprint(batch_list[:CNN_STEPS]))
    return initial, records


def generate_cnn(dtype: str, batch_list: list | None = None) -> tuple[dict, list]:
    """``(initial weights, Keras records)`` from live Keras, both in torch layout."""
    from parity.generic import run_keras
    from parity.layers import keras_state, match_layers
    from tf_original import cnn as keras_cnn
    from torch_port import cnn as torch_cnn

    batch_list = batch_list if batch_list is not None else cnn_batches()
    keras_net = keras_cnn.build_model(dtype)
    match = match_layers(keras_net, torch_cnn.build_model(dtype))
    match.raise_if_problems("Keras -> torch")
    initial = keras_state(match)
    records = run_keras(keras_net, keras_cnn.make_loss(dtype), keras_cnn.make_optimizer(), batch_list, match)
    return initial, records


def torch_cnn_against_golden(dtype: str, mode: str, tolerances: dict, device: str = "cpu",
                             steps: int = CNN_STEPS, batch_list: list | None = None):
    """The torch CNN on ``device``, from the golden's initial weights, against the golden's records."""
    from parity.compare import compare_records
    from parity.generic import run_torch
    from torch_port import cnn as torch_cnn

    batch_list = batch_list if batch_list is not None else cnn_batches()
    initial, records = load_cnn(dtype, batch_list)
    net = torch_cnn.build_model(dtype, initial=initial).to(device)
    optimizer = torch_cnn.make_optimizer(net.parameters())
    other = run_torch(net, torch_cnn.make_loss(dtype), optimizer, batch_list[:steps],
                      teacher=records if mode == "teacher-forced" else None, names=list(records[0]["params"]))
    return compare_records(records[:steps], other, tolerances, label="Keras golden vs torch CNN",
                           dtype=dtype, mode=mode)


# --- the command -----------------------------------------------------------------------------

def write_all(dtypes=("float32", "float64")) -> list[Path]:
    """Regenerate every golden file from live TensorFlow; return the paths written."""
    data = load_tutorial_arrays(data="synthetic", notify=None)
    batch_list = cnn_batches()
    written = []
    for dtype in dtypes:
        written.append(save(tutorial_path(dtype), generate_tutorial(dtype, data).records, dtype=dtype,
                            data_sha256=data_fingerprint(data)))
        initial, records = generate_cnn(dtype, batch_list)
        written.append(save(cnn_path(dtype), records, dtype=dtype, data_sha256=cnn_fingerprint(batch_list),
                            initial=initial))
    return written
