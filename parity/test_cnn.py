"""The SIGNS CNN, Keras (tf_original/cnn.py) against torch (torch_port/cnn.py), through the generic API.

* step parity, float32 and float64, teacher-forced and free-running (tolerances: ``CNN`` in
  parity/tolerances.py);
* the classic porting mistakes are caught: a conv kernel loaded untransposed (refused when
  the shape is wrong, failing parity when a reshape makes it fit) and a Flatten-order mistake;
* the TF 'same' paddings against torch's, numerically;
* the committed Keras goldens: still equal to live Keras (CPU), and the torch CNN against them
  on CPU and on CUDA (the GPU machine has no TensorFlow).
"""

from __future__ import annotations

import numpy as np
import pytest

from parity import golden
from parity.compare import MODES
from parity.errors import TransferError
from parity.tolerances import CNN, CNN_CUDA, QUANTITIES

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")

STEPS = 3  # of the golden's 5; the CPU here is small and shared
DTYPES = ["float32", "float64"]


def needs_tf():
    return pytest.importorskip("tensorflow", reason="TensorFlow is not installed: the Keras side of the CNN "
                               "needs it (the golden tests still check torch)")


@pytest.fixture(scope="module")
def batches():
    return golden.cnn_batches()


def pair(dtype):
    """A fresh Keras CNN and torch CNN (untrained, the torch one with its own throw-away init)."""
    needs_tf()
    from tf_original import cnn as keras_cnn
    from torch_port import cnn as torch_cnn

    return keras_cnn, keras_cnn.build_model(dtype), torch_cnn, torch_cnn.build_model(dtype)


def parity(dtype, mode, batch_list, steps=STEPS, **kwargs):
    from parity.generic import step_parity

    keras_cnn, keras_net, torch_cnn, torch_net = pair(dtype)
    if "torch_state" in kwargs:  # weights loaded by hand instead of by the generic transfer
        from parity.layers import load_torch_state

        load_torch_state(torch_net, kwargs.pop("torch_state")(keras_net, torch_net))
        kwargs["transfer"] = False
    torch_optimizer = torch_cnn.make_optimizer(torch_net.parameters())
    return step_parity(keras_net, keras_cnn.make_loss(dtype), keras_cnn.make_optimizer(),
                       torch_net, torch_cnn.make_loss(dtype), torch_optimizer, batch_list, steps=steps,
                       mode=mode, tolerances=CNN[(dtype, mode)], **kwargs)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cnn_pair_passes_step_parity(batches, dtype, mode):
    result = parity(dtype, mode, batches)
    print(f"\nCNN {dtype} {mode}: " + ", ".join(f"{q} {result.worst_rel[q]:.1e}" for q in result.quantities))
    assert result.quantities == list(QUANTITIES)
    assert len(result.steps) == STEPS
    assert result.passed, result.table()
    assert [p[:3] for p in result.match.pairs] == [("conv1", "conv1", "conv2d"), ("conv2", "conv2", "conv2d"),
                                                   ("fc", "fc", "dense")]
    assert result.notes == []  # padding, strides, optimizer: nothing differs
    assert result.steps[-1].cost_a != result.steps[0].cost_a  # it trained


def test_transfer_permutes_the_dense_after_flatten():
    from parity.layers import keras_to_torch

    _, keras_net, _, torch_net = pair("float64")
    keras_to_torch(keras_net, torch_net)
    kernel = keras_net.get_layer("fc").kernel.numpy()            # (64, 6): rows in (h, w, c) order
    weight = torch_net.fc.weight.detach().numpy()                # (6, 64): columns in (c, h, w) order
    for c, h, w in [(0, 0, 0), (3, 1, 0), (15, 1, 1), (7, 0, 1)]:
        np.testing.assert_array_equal(weight[:, c * 4 + h * 2 + w], kernel[h * 2 * 16 + w * 16 + c, :])
    assert not np.array_equal(weight, kernel.T)
    conv = keras_net.get_layer("conv1").kernel.numpy()           # HWIO (4, 4, 3, 8)
    np.testing.assert_array_equal(torch_net.conv1.weight.detach().numpy(), conv.transpose(3, 2, 0, 1))


def test_untransposed_conv_kernel_is_refused():
    from parity.layers import keras_state, load_torch_state, match_layers

    _, keras_net, _, torch_net = pair("float32")
    state = keras_state(match_layers(keras_net, torch_net))
    state["conv1.weight"] = keras_net.get_layer("conv1").kernel.numpy()  # HWIO (4, 4, 3, 8) as is
    with pytest.raises(TransferError, match=r"conv1.weight has shape \(4, 4, 3, 8\), the module's is "
                                            r"\(8, 3, 4, 4\) \(an HWIO Keras conv kernel\?"):
        load_torch_state(torch_net, state)


def test_conv_configured_differently_is_refused():
    from torch import nn

    from parity.layers import keras_to_torch

    _, keras_net, _, torch_net = pair("float32")
    torch_net.conv1 = nn.Conv2d(3, 8, kernel_size=2, padding="same")
    with pytest.raises(TransferError) as error:
        keras_to_torch(keras_net, torch_net)
    message = str(error.value)
    assert "\n" not in message
    assert ("conv1/kernel (4, 4, 3, 8) becomes (8, 3, 4, 4) in torch layout, but conv1.weight is (8, 3, 2, 2)"
            in message)


def _reshaped_conv1(keras_net, torch_net):
    """The generic transfer's weights, but conv1's kernel copied by a raw reshape (no transpose)."""
    from parity.layers import keras_state, match_layers

    state = keras_state(match_layers(keras_net, torch_net))
    state["conv1.weight"] = keras_net.get_layer("conv1").kernel.numpy().reshape(8, 3, 4, 4)
    return state


def test_reshaped_conv_kernel_fits_but_fails_parity(batches):
    result = parity("float32", "teacher-forced", batches, steps=2, torch_state=_reshaped_conv1)
    assert not result.passed
    assert {"output", "cost", "grads"} <= set(result.failing)
    assert result.worst_rel["output"] > 1e-2, result.worst_rel
    assert result.worst_step["output"] == 1  # seen at the first step, not after drifting


def test_flatten_order_mistake_is_caught(batches):
    # flatten_shapes={"fc": None}: fc's kernel only transposed, as if both flattened alike
    result = parity("float32", "teacher-forced", batches, steps=2, flatten_shapes={"fc": None})
    assert not result.passed
    assert {"output", "cost", "grads"} <= set(result.failing)
    assert result.worst_rel["output"] > 1e-2, result.worst_rel


@pytest.mark.parametrize("kernel", [4, 2, 3])
def test_torch_same_padding_is_tf_same_padding(kernel):
    """TF 'SAME' pads k - 1 in total, (k - 1) // 2 before and the rest after; torch's 'same' too."""
    tf = needs_tf()
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(kernel)
    x = rng.standard_normal((2, 9, 10, 3))
    w = rng.standard_normal((kernel, kernel, 3, 5))                     # HWIO
    expected = tf.nn.conv2d(tf.constant(x), tf.constant(w), strides=1, padding="SAME").numpy()  # NHWC
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    wt = torch.from_numpy(w.transpose(3, 2, 0, 1).copy())
    same = F.conv2d(xt, wt, padding="same").numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(same, expected, rtol=0, atol=1e-12)
    before, after = (kernel - 1) // 2, kernel - 1 - (kernel - 1) // 2
    explicit = F.conv2d(F.pad(xt, (before, after, before, after)), wt).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(explicit, expected, rtol=0, atol=1e-12)
    if before != after:  # the other split is not the same convolution: the check can fail
        swapped = F.conv2d(F.pad(xt, (after, before, after, before)), wt).numpy().transpose(0, 2, 3, 1)
        assert np.abs(swapped - expected).max() > 1e-3


def test_plain_max_pools_are_tf_same_pools_when_sizes_divide():
    tf = needs_tf()
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    for size, channels, pool in [(64, 8, 8), (8, 16, 4)]:
        x = rng.standard_normal((2, size, size, channels))
        expected = tf.nn.max_pool2d(tf.constant(x), pool, pool, "SAME").numpy()
        got = F.max_pool2d(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), pool, pool).numpy()
        np.testing.assert_array_equal(got.transpose(0, 2, 3, 1), expected)
    # where the size does not divide, TF 'SAME' pads (ceil(10 / 4) = 3 outputs), a plain pool does not
    x = rng.standard_normal((1, 10, 10, 1))
    assert tf.nn.max_pool2d(tf.constant(x), 4, 4, "SAME").shape[1] == 3
    assert F.max_pool2d(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), 4, 4).shape[2] == 2


def test_model_functions_train_alike():
    """The tutorial-style ``model()`` of both sides: one epoch of 2 mini-batches, same costs, predictions."""
    import torch

    from parity.layers import keras_to_torch

    keras_cnn, keras_net, torch_cnn, torch_net = pair("float64")
    keras_to_torch(keras_net, torch_net)
    X, Y, _, _ = torch_cnn.load_data("synthetic", notify=lambda _: None)
    X, Y = X[:128], Y[:128]
    keras_net, keras_costs = keras_cnn.model(X, Y, X, Y, num_epochs=1, print_cost=False, dtype="float64",
                                             net=keras_net)
    torch_net, torch_costs = torch_cnn.model(X, Y, X, Y, num_epochs=1, print_cost=False, dtype="float64",
                                             net=torch_net)
    np.testing.assert_allclose(torch_costs, keras_costs, rtol=1e-12)
    np.testing.assert_array_equal(
        torch_cnn.predict(torch_net, torch.from_numpy(torch_cnn.to_channels_first(X))),
        keras_cnn.predict(keras_net, X))


def test_torch_model_refuses_to_draw_its_own_weights():
    from torch_port import cnn as torch_cnn

    with pytest.raises(ValueError, match="initial weights come from the Keras side"):
        torch_cnn.model(np.zeros((2, 64, 64, 3)), np.zeros(2, dtype=np.int64), None, None, num_epochs=1)


# --- golden traces --------------------------------------------------------------------------

def test_cnn_goldens_are_small_enough_to_commit():
    assert sum(golden.cnn_path(dtype).stat().st_size for dtype in DTYPES) <= 1024 * 1024


@pytest.mark.parametrize("dtype", DTYPES)
def test_cnn_golden_matches_live_keras(batches, dtype):
    needs_tf()
    from parity.compare import compare_records

    saved_initial, saved = golden.load_cnn(dtype, batches)
    initial, live = golden.generate_cnn(dtype, batches)
    for name, value in initial.items():  # Keras's seeded draw is reproducible
        np.testing.assert_array_equal(saved_initial[name], value)
    # the same program: round-off on float64; float32 within the free-running bound (oneDNN may
    # choose other kernels on another CPU)
    result = compare_records(saved, live, CNN[(dtype, "free-running")])
    assert result.passed, result.table()


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_cpu_matches_cnn_golden(batches, dtype):
    # free-running only on CPU (the live tests above cover teacher forcing); CUDA runs both
    mode = "free-running"
    result = golden.torch_cnn_against_golden(dtype, mode, CNN[(dtype, mode)], steps=STEPS, batch_list=batches)
    assert len(result.steps) == STEPS
    assert result.passed, result.table()


@pytest.mark.gpu
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_cuda_matches_cnn_golden(batches, dtype, mode, cuda_full_float32):
    result = golden.torch_cnn_against_golden(dtype, mode, CNN_CUDA[dtype], device="cuda", batch_list=batches)
    assert len(result.steps) == golden.CNN_STEPS
    print(f"\nCUDA CNN vs Keras golden, {dtype} {mode}: "
          + ", ".join(f"{q} {result.worst_rel[q]:.1e}" for q in result.quantities))
    assert result.passed, result.table()
