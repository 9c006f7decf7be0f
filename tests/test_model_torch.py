"""The PyTorch port without TensorFlow: mini-batches, the sampler, layouts, the network, training.

The TF-side comparisons of the same functions are in ``test_model_tf.py``.
"""

from __future__ import annotations

import copy
import functools
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from signs import convert_to_one_hot, flatten, load_from, minibatch_indices  # noqa: E402
from signs.errors import InputError, NonFiniteCost  # noqa: E402
from signs.weights import PARAMETER_SHAPES, load_initial_parameters  # noqa: E402
from torch_port import checkpoint as ckpt  # noqa: E402
from torch_port import fast as fast_path  # noqa: E402
from torch_port import model as port  # noqa: E402
from torch_port import nn_model  # noqa: E402
from torch_port.fast import tf_adam_flat  # noqa: E402
from torch_port.optim import TFAdam  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def numpy_forward(X, p):
    """The tutorial's forward pass in NumPy: (12288, m) -> Z3 (6, m)."""
    A1 = np.maximum(p["W1"] @ X + p["b1"], 0)
    A2 = np.maximum(p["W2"] @ A1 + p["b2"], 0)
    return p["W3"] @ A2 + p["b3"]


def numpy_cost(Z3, Y):
    """Mean softmax cross-entropy over the columns of Z3 (6, m) against one-hot Y (6, m)."""
    shifted = Z3 - Z3.max(axis=0, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))
    return float(np.mean(-(Y * log_softmax).sum(axis=0)))


def perturbed_parameters(dtype="float64", seed=0):
    """The stored initial weights with random non-zero biases (to exercise broadcasting)."""
    rng = np.random.default_rng(seed)
    params = load_initial_parameters(dtype)
    for name in ("b1", "b2", "b3"):
        params[name] = rng.normal(0, 0.1, size=params[name].shape).astype(dtype)
    return params


@pytest.fixture(scope="module")
def subset(synthetic_dir):
    """128 training and 24 test examples of the synthetic set, in the tutorial's layout."""
    train_x, train_y, test_x, test_y, _ = load_from(synthetic_dir)
    return (flatten(train_x[:128], np.float32), convert_to_one_hot(train_y[:, :128], 6),
            flatten(test_x[:24], np.float32), convert_to_one_hot(test_y[:, :24], 6))


# --------------------------------------------------------------------------- mini-batches

def test_minibatch_partition_of_1080():
    batches = minibatch_indices(1080, 32, seed=4)
    assert len(batches) == 34
    assert [len(b) for b in batches] == [32] * 33 + [24]
    np.random.seed(4)
    permutation = np.random.permutation(1080)
    assert np.array_equal(np.concatenate(batches), permutation)
    assert np.array_equal(np.sort(permutation), np.arange(1080))  # a partition


@pytest.mark.parametrize("m, size, sizes", [(64, 32, [32, 32]), (10, 64, [10]), (7, 3, [3, 3, 1]),
                                            (1, 32, [1])])
def test_minibatch_sizes(m, size, sizes):
    assert [len(b) for b in minibatch_indices(m, size, seed=0)] == sizes


def test_minibatch_rejects_size_zero():
    with pytest.raises(ValueError):
        minibatch_indices(10, 0)


def test_random_mini_batches_slices_columns():
    rng = np.random.default_rng(0)
    X = rng.random((3, 1080))
    labels = rng.integers(0, 6, 1080)
    Y = convert_to_one_hot(labels, 6)
    batches = port.random_mini_batches(torch.as_tensor(X), torch.as_tensor(Y), 32, seed=5)
    np.random.seed(5)
    permutation = np.random.permutation(1080)
    assert len(batches) == 34
    for k, (batch_X, batch_Y) in enumerate(batches):
        columns = permutation[32 * k:32 * (k + 1)]
        assert batch_X.dtype == torch.float64 and batch_X.shape == (3, len(columns))
        assert np.array_equal(batch_X.numpy(), X[:, columns])
        assert np.array_equal(batch_Y.numpy(), Y[:, columns])


def test_sampler_replays_the_original_epoch_seeds():
    sampler = nn_model.TutorialBatchSampler(1080, 32)  # seed 3, as the original
    assert len(sampler) == 34
    for epoch in range(3):
        sampler.set_epoch(epoch)
        np.random.seed(4 + epoch)  # seed = seed + 1 before each epoch: 4, 5, 6
        permutation = np.random.permutation(1080)
        batches = list(sampler)
        assert len(batches) == 34
        for k, batch in enumerate(batches):
            assert np.array_equal(batch, permutation[32 * k:32 * (k + 1)])
        assert [list(b) for b in batches] == [list(b) for b in sampler]  # re-iterable, same epoch


def test_dataloader_batches_equal_line_by_line_batches():
    rng = np.random.default_rng(1)
    X = rng.random((5, 100))
    labels = rng.integers(0, 6, (1, 100))
    Y = convert_to_one_hot(labels, 6)
    dataset = nn_model.SignsDataset(X, Y, dtype="float64")
    assert len(dataset) == 100 and dataset.x.shape == (100, 5)  # (examples, features)
    assert torch.equal(nn_model.SignsDataset(X, labels, dtype="float64").y, dataset.y)
    loader = nn_model.make_loader(dataset, batch_size=32, seed=3)
    for epoch in range(2):
        loader.batch_sampler.set_epoch(epoch)
        tutorial = port.random_mini_batches(torch.as_tensor(X), torch.as_tensor(Y), 32, 3 + epoch + 1)
        idiomatic = list(loader)
        assert len(idiomatic) == len(tutorial) == 4
        for (x, y), (batch_X, batch_Y) in zip(idiomatic, tutorial):
            assert torch.equal(x, batch_X.T)
            assert torch.equal(y, batch_Y.argmax(dim=0))


# --------------------------------------------------------------------------- parameters

@pytest.mark.parametrize("dtype, torch_dtype", [("float32", torch.float32), ("float64", torch.float64)])
def test_initialize_parameters_layout_and_draw(dtype, torch_dtype):
    params = port.initialize_parameters(dtype)
    stored = load_initial_parameters(dtype)
    assert list(params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    for name, value in params.items():
        assert tuple(value.shape) == PARAMETER_SHAPES[name]  # W (out, in), b (out, 1)
        assert value.dtype == torch_dtype and value.requires_grad and value.is_leaf
        assert np.array_equal(value.detach().numpy(), stored[name])
    for name in ("b1", "b2", "b3"):
        assert not params[name].detach().any()
    # Glorot uniform: U(-limit, limit) with limit = sqrt(6 / (fan_in + fan_out)), std limit/sqrt(3)
    for name in ("W1", "W2", "W3"):
        fan_out, fan_in = PARAMETER_SHAPES[name]
        limit = np.sqrt(6 / (fan_in + fan_out))
        assert np.abs(stored[name]).max() <= limit
    W1_limit = np.sqrt(6 / (12288 + 25))
    assert abs(stored["W1"].std() / (W1_limit / np.sqrt(3)) - 1) < 0.01
    # TF's seed-1 initializers share one stream: W3's unit draws are W2's first 72.
    units = {n: (stored[n].astype(np.float64) / np.sqrt(6 / sum(PARAMETER_SHAPES[n])) + 1) / 2
             for n in ("W2", "W3")}
    np.testing.assert_allclose(units["W3"].reshape(-1), units["W2"].reshape(-1)[:72], atol=1e-6)


def test_float64_draw_is_not_the_float32_draw_widened():
    f32, f64 = load_initial_parameters("float32"), load_initial_parameters("float64")
    assert not np.array_equal(f64["W2"], f32["W2"].astype(np.float64))


def test_initialize_parameters_takes_given_weights():
    given = perturbed_parameters("float64")
    params = port.initialize_parameters("float64", initial_parameters=given)
    for name in given:
        assert np.array_equal(params[name].detach().numpy(), given[name])
    with pytest.raises(InputError, match="W1 has shape"):
        port.initialize_parameters("float64", initial_parameters={**given, "W1": given["W1"].T})


# --------------------------------------------------------------------------- network

def test_forward_cost_predict_against_numpy():
    rng = np.random.default_rng(2)
    X = rng.random((12288, 10))
    labels = rng.integers(0, 6, 10)
    Y = convert_to_one_hot(labels, 6)
    params = perturbed_parameters("float64")
    torch_params = port.initialize_parameters("float64", initial_parameters=params)
    Z3 = port.forward_propagation(torch.as_tensor(X), torch_params)
    assert Z3.shape == (6, 10)  # (classes, examples)
    np.testing.assert_allclose(Z3.detach().numpy(), numpy_forward(X, params), rtol=1e-12, atol=1e-12)
    cost = port.compute_cost(Z3, torch.as_tensor(Y))
    assert cost.shape == () and cost.dtype == torch.float64
    np.testing.assert_allclose(cost.item(), numpy_cost(numpy_forward(X, params), Y), rtol=1e-12)
    # one-hot probabilities and class indices give the same loss
    index_cost = torch.nn.functional.cross_entropy(Z3.T, torch.as_tensor(labels))
    np.testing.assert_allclose(index_cost.item(), cost.item(), rtol=1e-14)
    prediction = port.predict(X, params)
    assert prediction.shape == (10,) and prediction.dtype == np.int64
    assert np.array_equal(prediction, numpy_forward(X, params).argmax(axis=0))


def test_signs_net_layout_and_forward():
    params = perturbed_parameters("float64")
    net = nn_model.SignsNet().to(torch.float64).load_tutorial_parameters(params)
    state = net.state_dict()
    assert state["fc1.weight"].shape == (25, 12288)  # nn.Linear.weight is (out, in): W as it is
    assert state["fc1.bias"].shape == (25,)  # bias (n,) instead of (n, 1)
    assert np.array_equal(state["fc2.weight"].numpy(), params["W2"])
    assert np.array_equal(state["fc3.bias"].numpy(), params["b3"].reshape(-1))
    round_trip = net.tutorial_parameters()
    for name in params:
        assert round_trip[name].shape == params[name].shape
        assert np.array_equal(round_trip[name], params[name])
    X = np.random.default_rng(3).random((12288, 7))
    logits = net(torch.as_tensor(X.T))  # (examples, features) -> (examples, classes)
    assert logits.shape == (7, 6)
    Z3 = port.forward_propagation(torch.as_tensor(X), port.initialize_parameters("float64", "cpu", params))
    np.testing.assert_allclose(logits.detach().numpy(), Z3.detach().numpy().T, rtol=1e-12, atol=1e-12)


def test_tutorial_parameters_are_copies():
    """``get_parameters()`` in ``on_epoch_end`` must be a snapshot, not a view of live weights."""
    net = nn_model.SignsNet()
    snapshot = net.tutorial_parameters()
    before = {k: v.copy() for k, v in snapshot.items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    for name in snapshot:
        assert np.array_equal(snapshot[name], before[name]), f"{name} follows the live parameter"


# --------------------------------------------------------------------------- training

TRAINERS = {"line-by-line": port.model, "idiomatic": nn_model.train}


def _run(trainer, data, **kwargs):
    epoch_costs, batch_costs, records = [], [], []

    def on_epoch_end(epoch, cost, get_parameters, optimizer, costs):
        epoch_costs.append(cost)

    def hook(record):
        batch_costs.append(float(record["cost"]))
        records.append(record)

    kwargs.setdefault("print_cost", False)
    params, costs = trainer(*data, on_epoch_end=on_epoch_end, hook=hook, **kwargs)
    return params, costs, epoch_costs, batch_costs, records


def test_short_training_decreases_cost_and_ports_agree(subset, capsys):
    results = {}
    for impl, trainer in TRAINERS.items():
        params, costs, epoch_costs, *_ = _run(trainer, subset, num_epochs=6, print_cost=True)
        assert epoch_costs[-1] < epoch_costs[0] - 0.02, (impl, epoch_costs)
        assert costs == [epoch_costs[0], epoch_costs[5]]  # recorded every 5 epochs
        assert all(params[n].shape == s and params[n].dtype == np.float32
                   for n, s in PARAMETER_SHAPES.items())
        results[impl] = params, epoch_costs
        out = capsys.readouterr().out
        assert "Cost after epoch 0:" in out and "Train Accuracy:" in out and "Test Accuracy:" in out
    (p1, c1), (p2, c2) = results.values()
    # Same weights, batches and optimizer; only the summation order of float32 matmuls differs.
    np.testing.assert_allclose(c1, c2, rtol=1e-5)
    for name in p1:
        assert np.abs(p1[name] - p2[name]).max() <= 1e-4 * np.abs(p1[name]).max(), name


@pytest.mark.parametrize("impl", TRAINERS)
def test_epoch_cost_divides_by_full_batches(subset, impl):
    X, Y, X_test, Y_test = subset
    data = (X[:, :100], Y[:, :100], X_test, Y_test)  # 100 = 3 x 32 + 4: 4 batches, 3 full
    _, _, epoch_costs, batch_costs, records = _run(TRAINERS[impl], data, num_epochs=1)
    assert len(batch_costs) == 4
    np.testing.assert_allclose(epoch_costs[0], sum(batch_costs) / 3, rtol=1e-6)
    for k, record in enumerate(records):
        assert np.array_equal(record["batch"], minibatch_indices(100, 32, 4)[k])
        expected = (6, len(record["batch"])) if impl == "line-by-line" else (len(record["batch"]), 6)
        assert record["output"].shape == expected


def test_idiomatic_epoch_cost_switch_33_vs_34(synthetic_dir):
    train_x, train_y, _, _, _ = load_from(synthetic_dir)
    data = (flatten(train_x, np.float32), convert_to_one_hot(train_y, 6),
            flatten(train_x[:6], np.float32), convert_to_one_hot(train_y[:, :6], 6))
    original = _run(nn_model.train, data, num_epochs=1, epoch_cost="original")
    mean = _run(nn_model.train, data, num_epochs=1, epoch_cost="mean")
    assert len(original[3]) == len(mean[3]) == 34
    assert original[3] == mean[3]  # the same 34 batch costs
    np.testing.assert_allclose(original[2][0], sum(original[3]) / 33, rtol=1e-6)
    np.testing.assert_allclose(mean[2][0], sum(mean[3]) / 34, rtol=1e-6)
    np.testing.assert_allclose(original[2][0] / mean[2][0], 34 / 33, rtol=1e-6)
    with pytest.raises(ValueError, match="epoch_cost"):
        nn_model.train(*data, num_epochs=1, epoch_cost="median")


@pytest.mark.parametrize("impl", TRAINERS)
def test_nan_cost_names_epoch_and_step(subset, impl):
    X, Y, X_test, Y_test = subset
    X = X.copy()
    column = 77
    X[0, column] = np.nan
    step = next(k for k, b in enumerate(minibatch_indices(128, 32, 4)) if column in b) + 1
    with pytest.raises(NonFiniteCost) as info:
        TRAINERS[impl](X, Y, X_test, Y_test, num_epochs=2, print_cost=False)
    assert (info.value.epoch, info.value.step) == (0, step)
    assert f"epoch 0, step {step}" in str(info.value)


@pytest.mark.parametrize("impl", TRAINERS)
def test_resume_from_epoch_state_is_bit_identical(subset, impl):
    trainer = TRAINERS[impl]
    snapshot = {}

    def on_epoch_end(epoch, cost, get_parameters, optimizer, costs):
        if epoch == 1:
            snapshot.update(epoch=2, parameters=get_parameters(), costs=list(costs),
                            optimizer=copy.deepcopy(optimizer.state_dict()))

    straight, straight_costs = trainer(*subset, num_epochs=4, print_cost=False, on_epoch_end=on_epoch_end)
    resumed, resumed_costs = trainer(*subset, num_epochs=4, print_cost=False, resume=snapshot)
    for name in straight:
        assert np.array_equal(straight[name], resumed[name]), name
    assert straight_costs == resumed_costs


# --------------------------------------------------------------------------- checkpoints

def _checkpoint(tmp_path, **overrides):
    params = port.initialize_parameters("float32")
    optimizer = port.make_optimizer("tf-adam", list(params.values()), 1e-4)
    kwargs = dict(epoch=3, parameters={k: v.detach() for k, v in params.items()}, optimizer=optimizer,
                  costs=[1.5, 1.25], settings={"impl": "line-by-line", "num_epochs": 6})
    kwargs.update(overrides)
    return ckpt.save_checkpoint(tmp_path / "checkpoint.pt", **kwargs)


def test_checkpoint_round_trip_loads_with_weights_only(tmp_path):
    path = _checkpoint(tmp_path)
    raw = torch.load(path, weights_only=True)
    assert raw["format_version"] == 1 and raw["epoch"] == 3
    loaded = ckpt.load_checkpoint(path)
    assert loaded["costs"] == [1.5, 1.25]
    for name, value in load_initial_parameters("float32").items():
        assert np.array_equal(loaded["parameters"][name].numpy(), value)
    with pytest.raises(InputError, match="num_epochs=6"):
        ckpt.check_settings(path, loaded["settings"], {"impl": "line-by-line", "num_epochs": 9})


def _save_raw(path, payload):
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize("case, expected", [
    ("corrupt", "not a readable checkpoint"),
    ("empty", "empty"),
    ("not a dict", "no format_version"),
    ("newer", "newer than this program"),
    ("architecture", "architecture"),
    ("shape", "another architecture"),
])
def test_bad_checkpoints(tmp_path, case, expected):
    path = tmp_path / "bad.pt"
    good = {k: torch.zeros(s) for k, s in PARAMETER_SHAPES.items()}
    base = {"format_version": 1, "architecture": ckpt.ARCHITECTURE, "epoch": 1, "parameters": good,
            "optimizer": {}, "costs": [], "settings": {}}
    if case == "corrupt":
        path.write_bytes(b"PK\x03\x04 definitely not a zip archive" * 10)
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "not a dict":
        _save_raw(path, [1, 2, 3])
    elif case == "newer":
        _save_raw(path, {**base, "format_version": 99})
    elif case == "architecture":
        _save_raw(path, {**base, "architecture": "resnet-18"})
    else:
        _save_raw(path, {**base, "parameters": {**good, "W1": torch.zeros(50, 12288)}})
    with pytest.raises(InputError, match=expected) as info:
        ckpt.load_checkpoint(path)
    assert str(info.value).startswith(str(path) + ":") and "\n" not in str(info.value)


# --------------------------------------------------------------------------- the fast path: same bits
# torch_port.fast promises the readable idiomatic loop's numbers bit for bit, so these tests
# compare with ==, not a tolerance.

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_flat_adam_update_is_tf_adam_step_bit_for_bit(dtype):
    gen = torch.Generator().manual_seed(0)
    shapes = [(25, 12288), (25,), (12, 25), (12,), (6, 12), (6,)]
    params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype) * 0.1) for s in shapes]
    flat = [p.detach().clone().reshape(-1) for p in params]
    reference = TFAdam(params, lr=1e-4)
    p = torch.cat(flat)
    m, v, scratch = torch.zeros_like(p), torch.zeros_like(p), torch.empty_like(p)
    flat_adam = TFAdam([torch.nn.Parameter(torch.zeros(1, dtype=dtype))], lr=1e-4)  # constants only
    group = flat_adam.param_groups[0]
    for _ in range(3):
        for q in params:
            q.grad = torch.randn(q.shape, generator=gen, dtype=dtype) * 1e-3
        g = torch.cat([q.grad.reshape(-1) for q in params])
        constants = flat_adam.constants(group, dtype)
        reference.step()
        tf_adam_flat(p, g, m, v, scratch, *constants)
        flat_adam.advance(group)
    assert torch.equal(p, torch.cat([q.detach().reshape(-1) for q in params]))
    assert torch.equal(m, torch.cat([reference.state[q]["m"].reshape(-1) for q in params]))
    assert torch.equal(v, torch.cat([reference.state[q]["v"].reshape(-1) for q in params]))


@pytest.fixture(scope="module")
def tutorial_arrays(synthetic_dir):
    train_x, train_y, test_x, test_y, _ = load_from(synthetic_dir)
    return flatten(train_x), convert_to_one_hot(train_y, 6), flatten(test_x), convert_to_one_hot(test_y, 6)


class _Stop(Exception):
    pass


def _train(fast: bool):
    """The fast path's train with TFAdam's own ten passes (bit for bit), or the readable loop's."""
    return functools.partial(fast_path.train, adam_kernel="exact") if fast else nn_model.train


def _first_records(arrays, dtype, fast, steps=3):
    records = []

    def hook(record):
        records.append(record)
        if len(records) == steps:
            raise _Stop
        if len(records) == 2:  # teacher forcing goes through the fast path's views too
            return {"params": {k: v * 1.001 for k, v in record["params"].items()},
                    "m": record["m"], "v": {k: v * 0.5 for k, v in record["v"].items()}}
        return None

    with pytest.raises(_Stop):
        _train(fast)(*arrays, num_epochs=1, print_cost=False, dtype=dtype, hook=hook)
    return records


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_train_hook_records_are_the_readable_loops(tutorial_arrays, torch_one_thread, dtype):
    slow = _first_records(tutorial_arrays, dtype, fast=False)
    fast = _first_records(tutorial_arrays, dtype, fast=True)
    for a, b in zip(slow, fast):
        assert a["step"] == b["step"] and np.array_equal(a["batch"], b["batch"])
        for key in ("output", "cost"):
            assert np.array_equal(a[key], b[key]), key
        for key in ("grads", "params", "m", "v"):
            for name in a[key]:
                assert np.array_equal(a[key][name], b[key][name]), (key, name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_train_two_epochs_are_the_readable_loops(tutorial_arrays, torch_one_thread, dtype):
    runs = []
    for fast in (False, True):
        epoch_costs: list[float] = []
        params, _ = _train(fast)(*tutorial_arrays, num_epochs=2, print_cost=False, dtype=dtype,
                                 on_epoch_end=lambda epoch, cost, *_, out=epoch_costs:
                                   out.append(cost))
        runs.append((params, epoch_costs))
    (slow_params, slow_costs), (fast_params, fast_costs) = runs
    for name in slow_params:
        assert np.array_equal(slow_params[name], fast_params[name]), name
    assert len(slow_costs) == 2 and slow_costs == fast_costs


def test_fast_train_refuses_torch_adam(tutorial_arrays):
    with pytest.raises(ValueError, match="TF1's Adam"):
        fast_path.train(*tutorial_arrays, num_epochs=1, print_cost=False, optimizer="adam")


def test_fast_train_resumes_bit_for_bit(tutorial_arrays, torch_one_thread):
    """A checkpoint taken from the fast path (its optimizer state is views of flat buffers)
    resumes in either path exactly where an uninterrupted run would be."""
    saved = {}

    def on_epoch_end(epoch, cost, get_parameters, optimizer, costs):
        if epoch == 0:
            state = copy.deepcopy(optimizer.state_dict())
            saved.update(epoch=1, parameters=get_parameters(), optimizer=state, costs=list(costs))

    whole, _ = fast_path.train(*tutorial_arrays, num_epochs=2, print_cost=False, dtype="float64",
                               on_epoch_end=on_epoch_end)
    for fast in (True, False):
        resumed, _ = _train(fast)(*tutorial_arrays, num_epochs=2, print_cost=False, dtype="float64",
                                  resume=saved)
        for name in whole:
            assert np.array_equal(whole[name], resumed[name]), (fast, name)


@pytest.mark.parametrize("dtype,bound", [("float64", 1e-13), ("float32", 1e-5)])
def test_fused_adam_kernel_is_tf_adam_to_round_off(tutorial_arrays, dtype, bound):
    """The default fast path folds TF1's step size into torch's fused Adam kernel: over an epoch
    it stays at round-off from TFAdam's own passes, and it really is another kernel."""
    runs = {kernel: fast_path.train(*tutorial_arrays, num_epochs=1, print_cost=False, dtype=dtype,
                                    adam_kernel=kernel)[0] for kernel in ("exact", "fused")}
    worst = max(float(np.abs(runs["exact"][n] - runs["fused"][n]).max() / np.abs(runs["exact"][n]).max())
                for n in runs["exact"])
    assert 0 < worst <= bound, worst


def test_unknown_adam_kernel_is_refused(tutorial_arrays):
    with pytest.raises(ValueError, match="adam_kernel must be one of exact, fused"):
        fast_path.train(*tutorial_arrays, num_epochs=1, print_cost=False, adam_kernel="nope")


def test_flushing_denormals_keeps_the_numbers_and_is_undone(tutorial_arrays):
    """The default fast path flushes denormals as TF's kernels do: over an epoch nothing that
    large is flushed (same bits), and afterwards denormal arithmetic works again."""
    torch.set_flush_denormal(False)  # torch's default
    tiny = torch.tensor(1e-39, dtype=torch.float32)  # a float32 denormal
    plain = fast_path.train(*tutorial_arrays, num_epochs=1, print_cost=False, adam_kernel="fused")[0]
    flushed = fast_path.train(*tutorial_arrays, num_epochs=1, print_cost=False, adam_kernel="fused",
                              flush_denormal=True)[0]
    for name in plain:
        assert np.array_equal(plain[name], flushed[name]), name
    assert (tiny * 1.0).item() != 0.0
    with fast_path.denormals_flushed(True):
        assert (tiny * 1.0).item() == 0.0
    assert (tiny * 1.0).item() != 0.0

