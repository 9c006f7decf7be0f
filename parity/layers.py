"""Weights of common layers between a Keras model and a torch module: layouts, matching, copying.

Every supported kind of layer is one record (:class:`Kind`, in :data:`RECORDS`): its Keras
class, its torch class, its weights as (Keras variables, torch tensors) with the conversions
both ways (:class:`WeightSpec`), the hint shown when shapes do not fit, the conventions in
which the two differ (``notes``) and the configurations that cannot be matched exactly
(``refuse``, ``torch_refuse``). Adding a kind is one record plus its tests
(parity/test_layer_kinds.py).

====================  ===================  ========================================  =====================
kind                  Keras layer          Keras weights -> torch tensors            torch module
====================  ===================  ========================================  =====================
dense                 Dense                kernel (in, out) -> weight (out, in)      nn.Linear
                                           (inputs permuted after a Flatten,
                                           below); bias -> bias
conv1d                Conv1D               kernel (k, in, out) -> weight (out, in,   nn.Conv1d
                                           k); bias
conv2d                Conv2D               kernel HWIO (kh, kw, in, out) -> weight   nn.Conv2d
                                           OIHW (out, in, kh, kw); bias
conv2d_transpose      Conv2DTranspose      kernel (kh, kw, out, in) -> weight (in,   nn.ConvTranspose2d
                                           out, kh, kw), no spatial flip; bias
depthwise_conv2d      DepthwiseConv2D      kernel (kh, kw, in, m) -> weight (in*m,   nn.Conv2d(in, in*m,
                                           1, kh, kw), output channel c*m + j;       groups=in)
                                           bias (in*m,)
separable_conv2d      SeparableConv2D      depthwise_kernel -> depthwise.weight (as  a module with exactly
                                           depthwise_conv2d); pointwise_kernel (1,   two children:
                                           1, in*m, out) -> pointwise.weight (out,   depthwise = nn.Conv2d(
                                           in*m, 1, 1); bias -> pointwise.bias       in, in*m, k, groups=
                                                                                     in, bias=False),
                                                                                     pointwise = nn.Conv2d(
                                                                                     in*m, out, 1)
batchnorm             BatchNormalization   gamma, beta, moving_mean,                 nn.BatchNorm*d
                                           moving_variance (C,) -> weight, bias,
                                           running_mean, running_var
layernorm             LayerNormalization   gamma, beta -> weight, bias               nn.LayerNorm
embedding             Embedding            embeddings (vocab, dim) -> weight         nn.Embedding
prelu                 PReLU                alpha (1, .., 1, C) or (1, .., 1) ->      nn.PReLU(C) or
                                           weight (C,) or (1,)                       nn.PReLU()
simple_rnn            SimpleRNN            kernel (in, u) -> weight_ih_l0 (u, in);   nn.RNN
                                           recurrent_kernel -> weight_hh_l0;
                                           bias -> bias_ih_l0 (+ bias_hh_l0 = 0,
                                           frozen)
lstm                  LSTM                 kernel (in, 4u), recurrent_kernel (u,     nn.LSTM
                                           4u) -> weight_ih_l0, weight_hh_l0
                                           transposed, gates i, f, c(=g), o in the
                                           same order; bias (4u,) -> bias_ih_l0
                                           (+ bias_hh_l0 = 0, frozen)
gru                   GRU(reset_after=     kernel (in, 3u), recurrent_kernel ->      nn.GRU
                      True)                weight_ih_l0, weight_hh_l0 transposed,
                                           gate blocks z, r, h -> r, z, n; bias
                                           (2, 3u) -> bias_ih_l0 = bias[0],
                                           bias_hh_l0 = bias[1] (gates permuted)
bidirectional         Bidirectional(LSTM,  forward_layer's weights as above ->       nn.LSTM/GRU/RNN(
                      GRU or SimpleRNN)    *_l0; backward_layer's -> *_l0_reverse    bidirectional=True)
multi_head_attention  MultiHeadAttention   query/key/value kernels (E, H, d) ->      nn.MultiheadAttention(
                                           in_proj_weight (3E, E) = [Wq; Wk; Wv],    E, H), E = H * d
                                           each kernel.reshape(E, H*d).T; their
                                           biases (H, d) -> in_proj_bias (3E,);
                                           output kernel (H, d, E) ->
                                           out_proj.weight (E, H*d); its bias ->
                                           out_proj.bias
====================  ===================  ========================================  =====================

Recurrent and attention torch modules are built with ``batch_first=True``.

**Flatten order.** Keras is channels-last: ``Flatten`` of an (m, H, W, C) tensor gives features
in (h, w, c) order. torch is channels-first: ``flatten`` of (m, C, H, W) gives (c, h, w). So
the ``Dense``/``Linear`` right after a flatten of a feature map sees the same numbers in
another order, and its weight's *input* dimension must be permuted, not just transposed. The
matching below finds such a ``Dense`` (the first weighted layer after a Keras ``Flatten`` of a
4-D channels-last tensor) and permutes; ``flatten_shapes={"dense_name": (H, W, C)}`` states
the shape where Keras cannot tell it, ``{"dense_name": None}`` turns the permutation off (for a
torch module that flattens channels-last, e.g. ``x.permute(0, 2, 3, 1).flatten(1)``).

**Conventions that differ** (reported as notes, never silently changed): BatchNorm momentum
(Keras ``moving = momentum * moving + (1 - momentum) * batch``, default 0.99; torch
``running = (1 - momentum) * running + momentum * batch``, default 0.1: Keras 0.99 is torch
0.01), epsilon (Keras 1e-3, torch 1e-5, for BatchNorm and LayerNorm), and the variance in the
running statistics (Keras the biased batch variance, torch the unbiased one). Convolutions:
strides, dilation and padding that differ; Keras ``'same'`` with a stride > 1 pads by the
input size (torch's ``padding='same'`` refuses strides), Conv1D ``'causal'`` pads the start
only (``F.pad(x, (k - 1, 0))`` in torch). ``Conv2DTranspose``: Keras crops the transposed
convolution as TensorFlow does (``'same'``: ``(k - s) // 2`` at the start, the rest at the
end); the matching computes the ``padding``/``output_padding`` of ``nn.ConvTranspose2d`` that
does the same and notes a module set otherwise; where none does (``'same'`` with ``k - s``
odd, e.g. kernel 3 stride 2: torch would crop the start, Keras crops the end) the note says
what to crop by hand. Recurrent layers: ``go_backwards`` (the torch module must run on
``x.flip(1)``; Keras then returns the outputs in reversed order), ``stateful``, and for a
``Bidirectional`` a ``merge_mode`` other than ``'concat'`` (torch concatenates the
directions: the torch module merges them itself) or ``return_sequences=False`` (Keras's
backward half is torch's ``out[:, 0, u:]``, not ``out[:, -1, u:]``). PReLU: nn.PReLU acts
along dim 1 of its input; the non-1 axis of the Keras alpha must be that axis in torch.

**Layouts the torch module handles itself.** ``step_parity`` transposes only 4-D inputs (NHWC
-> NCHW); 3-D inputs go to both sides as they are, (batch, steps, features). Recurrent and
attention modules are built with ``batch_first=True`` (``batch_first=False`` is refused); a
``Conv1d`` twin transposes itself, ``conv(x.transpose(1, 2)).transpose(1, 2)``. Keras
recurrent layers with ``return_sequences=False`` return the last output: ``out[:, -1]`` of
the torch module (``h_n[-1]``). Keras ``MultiHeadAttention`` is called ``mha(query, value,
key=None)``, torch ``attn(query, key, value, need_weights=False)``; both scale by
``1 / sqrt(d)``, but in float64 Keras's factor is ``float32(1 / sqrt(d))`` (an ``ops.cast`` of a
Python float goes through float32): exact only for ``d`` a power of 4, noted otherwise. Masks
are the call's, not the layer's, so the matching cannot see them: Keras's ``attention_mask`` is
True where attention is allowed, torch's boolean ``attn_mask`` True where it is not; Keras's
``mask_zero``/``Masking`` masks of recurrent layers have no nn.LSTM counterpart (packed
sequences are another computation).

**Biases of recurrent layers.** Keras ``LSTM`` and ``SimpleRNN`` have one bias; torch adds
two, ``bias_ih`` and ``bias_hh``, and with both trainable an update moves their sum twice as
far as Keras moves its one. So the torch module keeps ``bias_hh_l0`` frozen at zero
(``requires_grad_(False)``; the transfer writes the zeros) and ``bias_ih_l0`` is Keras's bias:
same value, same gradient, same update. A trainable ``bias_hh_l0`` is refused; torch -> Keras
writes ``bias_ih + bias_hh``. (Keras's ``unit_forget_bias`` only initialises: the transfer copies
whatever the bias holds.) The GRU needs both: Keras's ``reset_after=True`` bias has a row
for each (torch's ``b_hn`` sits inside the reset gate's product, as Keras's recurrent bias).

**Refused** (one line each, with the reason): Keras ``GRU(reset_after=False)`` (nn.GRU applies
the reset gate after the recurrent product only); activations nn.LSTM/nn.GRU do not have
(``tanh`` and a ``sigmoid`` recurrent activation are fixed; Keras 2's ``hard_sigmoid`` is
not); ``SimpleRNN`` activations other than nn.RNN's ``nonlinearity``; recurrent ``dropout``
(random masks); torch ``num_layers > 1``, ``proj_size``, ``batch_first=False``; a
trainable ``bias_hh``; ``MultiHeadAttention`` whose heads do not pack into
``nn.MultiheadAttention`` (``num_heads`` differ, ``key_dim * num_heads != embed_dim``,
``value_dim != key_dim``, key/value/output sizes other than ``embed_dim`` i.e. torch's
unpacked ``kdim``/``vdim``, ``attention_axes``, ``add_bias_kv``, ``add_zero_attn``,
attention dropout); a PReLU alpha with more than one axis of slopes; a depthwise bias in a
separable twin; a ``Bidirectional`` around another layer, with forward and backward layers of
different kinds, or against another torch class than its layer's (GRU against nn.LSTM).

Matching: the weighted layers of each model in order (Keras: ``model.layers``, recursively;
torch: ``named_modules()``, i.e. registration order; a module of a supported kind owns its
children, e.g. nn.MultiheadAttention's ``out_proj``), with ``name_map={"keras_layer":
"torch.module.path"}`` pairing named layers first. Anything that does not fit (kinds that
differ, shapes, leftover layers, weights of unsupported layers, refused configurations) is a
*problem*; the copy functions refuse with a one-line :class:`parity.errors.TransferError`
listing them all.

**Weight groups.** Most Keras variables map to one torch tensor each. Some do not: GRU's bias
(one variable, two torch tensors) and MultiHeadAttention's in-projection (three variables,
one tensor). :attr:`LayerMatch.groups` holds every (Keras variables, torch tensors) group;
:meth:`LayerMatch.to_torch_values` converts values (parameters, gradients, optimizer slots)
group by group. The per-variable :class:`WeightMap` view (``match.weights``) converts only
one-to-one groups; for the others its ``to_torch`` refuses rather than drop a tensor.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from parity.errors import TransferError

_UNSET = object()


# --- conversions (NumPy arrays, Keras layout <-> torch layout) --------------------------------

def _identity(value: np.ndarray) -> np.ndarray:
    return value


def _hwio_to_oihw(value: np.ndarray) -> np.ndarray:
    return value.transpose(3, 2, 0, 1)


def _oihw_to_hwio(value: np.ndarray) -> np.ndarray:
    return value.transpose(2, 3, 1, 0)


def _reverse_axes(value: np.ndarray) -> np.ndarray:
    """Conv1D (k, in, out) <-> (out, in, k): its own inverse."""
    return value.transpose(2, 1, 0)


def flattened_kernel_to_torch(kernel: np.ndarray, hwc: tuple[int, int, int]) -> np.ndarray:
    """A Keras ``Dense`` kernel (H*W*C, out) fed by a channels-last flatten -> ``nn.Linear.weight``
    (out, C*H*W) fed by a channels-first flatten:
    ``weight[o, c*H*W + h*W + w] = kernel[h*W*C + w*C + c, o]``."""
    H, W, C = hwc
    out = kernel.shape[1]
    return kernel.reshape(H, W, C, out).transpose(3, 2, 0, 1).reshape(out, C * H * W)


def flattened_weight_to_keras(weight: np.ndarray, hwc: tuple[int, int, int]) -> np.ndarray:
    """The inverse of :func:`flattened_kernel_to_torch`: (out, C*H*W) -> (H*W*C, out)."""
    H, W, C = hwc
    out = weight.shape[0]
    return weight.reshape(out, C, H, W).transpose(2, 3, 1, 0).reshape(H * W * C, out)


def depthwise_kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """Keras depthwise kernel (kh, kw, in, m) -> ``Conv2d(groups=in).weight`` (in*m, 1, kh, kw):
    output channel ``c*m + j`` is input channel ``c``'s ``j``-th filter (TF's and torch's order)."""
    kh, kw, channels, multiplier = kernel.shape
    return kernel.reshape(kh, kw, channels * multiplier).transpose(2, 0, 1)[:, None]


def depthwise_weight_to_keras(weight: np.ndarray, multiplier: int) -> np.ndarray:
    """The inverse of :func:`depthwise_kernel_to_torch`."""
    out, _, kh, kw = weight.shape
    return weight[:, 0].transpose(1, 2, 0).reshape(kh, kw, out // multiplier, multiplier)


def gate_blocks(value: np.ndarray, order: Sequence[int], axis: int = 0) -> np.ndarray:
    """The gate blocks of ``value`` (equal parts along ``axis``) in the order ``order``:
    ``gate_blocks(w, (1, 0, 2))`` turns Keras's GRU z, r, h into torch's r, z, n (and back)."""
    blocks = np.split(value, len(order), axis=axis)
    return np.concatenate([blocks[i] for i in order], axis=axis)


GRU_GATES = (1, 0, 2)  # torch's r, z, n as Keras blocks (Keras z, r, h): its own inverse


# --- records -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairContext:
    """What converters may need beyond the arrays: the two layers and, for a ``Dense`` after a
    Flatten, the (H, W, C) of the flattened map."""

    keras_layer: object
    torch_module: nn.Module
    hwc: tuple | None = None


@dataclass(frozen=True)
class WeightSpec:
    """One group of weights of a kind: Keras variables <-> torch tensors.

    ``keras``: variable names in the kind's ``keras_variables(layer)`` dict; ``torch``: tensor
    names relative to the torch module. ``to_torch(context, *keras_arrays)`` returns the torch
    arrays in the order of ``torch``, ``to_keras(context, *torch_arrays)`` the Keras ones.
    ``frozen``: torch tensors the conversion writes but that must not train (LSTM's
    ``bias_hh_l0``, kept at zero), refused with ``frozen_why`` when trainable.
    """

    keras: tuple[str, ...]
    torch: tuple[str, ...]
    to_torch: Callable
    to_keras: Callable
    frozen: tuple[str, ...] = ()
    frozen_why: str = ""

    def renamed(self, keras_prefix: str, torch_suffix: str) -> WeightSpec:
        return WeightSpec(tuple(keras_prefix + n for n in self.keras),
                          tuple(n + torch_suffix for n in self.torch), self.to_torch, self.to_keras,
                          tuple(n + torch_suffix for n in self.frozen), self.frozen_why)


def _one(keras: str, torch_name: str, to_torch=_identity, to_keras=_identity) -> WeightSpec:
    """A one-to-one spec whose conversions need only the array."""
    return WeightSpec((keras,), (torch_name,), lambda context, a: (to_torch(a),),
                      lambda context, a: (to_keras(a),))


def _nothing(*args) -> None:
    return None


def _no_notes(keras_layer, torch_module) -> list[str]:
    return []


def variable_name(variable) -> str:
    """A Keras variable's own name: Keras 3's ``name`` (``"kernel"``), or the last part of Keras 2's
    (``"dense/kernel:0"`` -> ``"kernel"``)."""
    return variable.name.split(":")[0].split("/")[-1]


def variable_path(variable) -> str:
    """A Keras variable's full name: Keras 3's ``path``, Keras 2's ``name`` without ``:0``."""
    return getattr(variable, "path", None) or variable.name.split(":")[0]


def _variables_by_name(layer) -> dict:
    return {variable_name(v): v for v in layer.weights}


def _depthwise_variables(layer) -> dict:
    """Keras 2 names a DepthwiseConv2D's kernel ``depthwise_kernel``, Keras 3 ``kernel``."""
    named = _variables_by_name(layer)
    return {"kernel" if name == "depthwise_kernel" else name: v for name, v in named.items()}


@dataclass(frozen=True)
class Kind:
    """Everything about one kind of layer (see the module docstring's table).

    ``keras``: Keras class names (``keras.layers.<name>``); ``torch``: torch classes, and
    ``accepts(module)`` for what a class alone does not say (direction, groups, structure);
    ``weights``: the :class:`WeightSpec` list, or ``specs(keras_layer)`` when it depends on the
    layer; ``keras_variables(layer)``: ``{name: variable}`` the specs refer to; ``layout``: the
    hint after a shape that does not fit; ``notes(keras_layer, torch_module)``: conventions that
    differ (one line each, not fatal); ``refuse(keras_layer, torch_module)``: why this pair
    cannot be matched exactly, or None; ``torch_refuse(torch_module)``: why the torch module
    cannot be matched with any Keras layer of the kind (e.g. ``batch_first=False``), or None.
    """

    name: str
    keras: tuple[str, ...]
    torch: tuple[type, ...]
    weights: tuple[WeightSpec, ...] = ()
    layout: str = ""
    accepts: Callable | None = None
    notes: Callable = _no_notes
    refuse: Callable = _nothing
    torch_refuse: Callable = _nothing
    keras_variables: Callable = _variables_by_name
    specs: Callable | None = None

    def accepts_torch(self, module: nn.Module) -> bool:
        if self.torch and not isinstance(module, self.torch):
            return False
        return self.accepts is None or bool(self.accepts(module))

    def weight_specs(self, keras_layer) -> tuple[WeightSpec, ...]:
        return self.specs(keras_layer) if self.specs is not None else self.weights


# --- dense, embedding, normalisation -------------------------------------------------------------

def _dense_kernel_to_torch(context: PairContext, kernel):
    return (kernel.T if context.hwc is None else flattened_kernel_to_torch(kernel, context.hwc),)


def _dense_kernel_to_keras(context: PairContext, weight):
    return (weight.T if context.hwc is None else flattened_weight_to_keras(weight, context.hwc),)


def _close(a, b) -> bool:
    return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(a)))


def _epsilon_notes(layer, module) -> list[str]:
    if _close(layer.epsilon, module.eps):
        return []
    return [f"epsilon differs: Keras {layer.epsilon:g}, torch {module.eps:g} (defaults 1e-3 vs 1e-5: pass "
            "epsilon= to Keras or eps= to torch)"]


def _is_keras2(layer) -> bool:
    return type(layer).__module__.startswith("tf_keras")


def _batchnorm_notes(layer, module) -> list[str]:
    notes = _epsilon_notes(layer, module)
    if module.momentum is None:
        notes.append("torch momentum=None (a cumulative average) has no Keras equivalent")
    elif not any(_close(expected, module.momentum)
                 for expected in (1.0 - layer.momentum, float(np.float32(1.0 - layer.momentum)))):
        notes.append(f"momentum differs: Keras {layer.momentum:g} means torch {1.0 - layer.momentum:g}, "
                     f"torch has {module.momentum:g} (Keras keeps momentum * old, torch momentum * new)")
    elif (_is_keras2(layer) and str(getattr(layer, "dtype", "")) == "float64"
          and module.momentum != float(np.float32(1.0 - layer.momentum))):
        notes.append(f"Keras 2 updates the moving statistics with decay = float32(1 - momentum) = "
                     f"{float(np.float32(1.0 - layer.momentum))!r}, in float64 too (a Python float through "
                     "tf.convert_to_tensor): give torch momentum=float(np.float32(1 - m))")
    notes.append("running variance: Keras updates it with the biased batch variance, torch with the unbiased "
                 "one (x m/(m-1)); training outputs agree, moving statistics drift")
    return notes


def _layernorm_notes(layer, module) -> list[str]:
    notes = _epsilon_notes(layer, module)
    if getattr(layer, "rms_scaling", False):
        notes.append("Keras rms_scaling=True is RMSNorm, not nn.LayerNorm")
    return notes


def _embedding_notes(layer, module) -> list[str]:
    if module.padding_idx is not None:
        return [f"torch padding_idx={module.padding_idx} never updates that row; Keras does"]
    return []


# --- convolutions ------------------------------------------------------------------------------

def _zero_padding(padding) -> bool:
    return padding == "valid" or (not isinstance(padding, str) and all(p == 0 for p in padding))


def _conv_notes(layer, module, groups: bool = True) -> list[str]:
    """Strides, dilation, padding (and ``groups``) of a Keras convolution against a torch
    ``Conv1d``/``Conv2d``."""
    notes = []
    torch_name = type(module).__name__
    if tuple(layer.strides) != tuple(module.stride):
        notes.append(f"strides differ: Keras {tuple(layer.strides)}, torch {tuple(module.stride)}")
    if tuple(layer.dilation_rate) != tuple(module.dilation):
        notes.append(f"dilation differs: Keras {tuple(layer.dilation_rate)}, torch {tuple(module.dilation)}")
    padding = module.padding
    kernel = tuple(module.kernel_size)
    if layer.padding == "valid" and not _zero_padding(padding):
        notes.append(f"Keras padding 'valid', torch padding={padding}")
    if layer.padding == "same":
        odd_symmetric = all(k % 2 == 1 for k in kernel) and padding == tuple((k - 1) // 2 for k in kernel)
        if padding != "same" and not odd_symmetric:
            notes.append(f"Keras padding 'same' (extra row/column at the bottom/right for even kernels), "
                         f"torch padding={padding}: use padding='same' (stride 1)")
        if any(s != 1 for s in layer.strides):
            notes.append(f"Keras 'same' with stride {tuple(layer.strides)} pads asymmetrically; torch "
                         f"{torch_name} cannot: pad with F.pad first")
    if layer.padding == "causal":
        left = (layer.kernel_size[0] - 1) * layer.dilation_rate[0]
        notes.append(f"Keras padding 'causal' pads {left} steps at the start only; torch {torch_name} "
                     f"cannot: F.pad(x, ({left}, 0)) first, with padding=0")
    if groups and getattr(layer, "groups", 1) != module.groups:
        notes.append(f"groups differ: Keras {getattr(layer, 'groups', 1)}, torch {module.groups}")
    return notes


def transpose_conv_crops(kernel: int, stride: int, dilation: int, padding: str,
                         output_padding: int | None) -> tuple[int, int]:
    """What Keras (TensorFlow) cuts from the full transposed convolution along one axis:
    ``(start, end)``; a negative ``end`` extends it (zeros, then the bias).

    The full result has ``(n - 1) * stride + k_eff`` entries, ``k_eff = (kernel - 1) *
    dilation + 1``; Keras's output length is its ``deconv`` length; ``'same'`` cuts the excess
    as TensorFlow's SAME padding does, the smaller half first; ``'valid'`` cuts nothing at the
    start. Neither depends on ``n``.
    """
    effective = (kernel - 1) * dilation + 1
    n = 8
    full = (n - 1) * stride + effective
    if padding == "valid":
        length = full + (max(effective, stride) - effective if output_padding is None else output_padding)
        start = 0
    else:
        length = n * stride if output_padding is None else (n - 1) * stride + effective % 2 + output_padding
        start = max(full - length, 0) // 2
    return start, full - length - start


def torch_transpose_padding(kernel, stride, dilation, padding, output_padding):
    """``(padding, output_padding)`` of ``nn.ConvTranspose2d`` computing what Keras's
    ``Conv2DTranspose`` computes, per axis; None where none does (torch cuts ``padding`` at
    both ends and adds ``output_padding`` at the end only, with ``0 <= output_padding <
    max(stride, dilation)``)."""
    pads, extras = [], []
    for i, k in enumerate(kernel):
        op = None if output_padding is None else output_padding[i]
        start, end = transpose_conv_crops(k, stride[i], dilation[i], padding, op)
        extra = start - end
        if not 0 <= extra < max(stride[i], dilation[i]):
            return None
        pads.append(start)
        extras.append(extra)
    return tuple(pads), tuple(extras)


def _conv_transpose_notes(layer, module) -> list[str]:
    notes = []
    if tuple(layer.strides) != tuple(module.stride):
        notes.append(f"strides differ: Keras {tuple(layer.strides)}, torch {tuple(module.stride)}")
    if tuple(layer.dilation_rate) != tuple(module.dilation):
        notes.append(f"dilation differs: Keras {tuple(layer.dilation_rate)}, torch {tuple(module.dilation)}")
    kernel, strides, dilation = tuple(layer.kernel_size), tuple(layer.strides), tuple(layer.dilation_rate)
    output_padding = None if layer.output_padding is None else tuple(layer.output_padding)
    expected = torch_transpose_padding(kernel, strides, dilation, layer.padding, output_padding)
    described = f"Keras padding {layer.padding!r}, output_padding={output_padding}"
    if expected is None:
        crops = [transpose_conv_crops(k, s, d, layer.padding, None if output_padding is None
                                      else output_padding[i])
                 for i, (k, s, d) in enumerate(zip(kernel, strides, dilation))]
        notes.append(f"{described} cuts (start, end) = {crops} per axis from the full transposed "
                     "convolution; no padding/output_padding of torch ConvTranspose2d does (it cuts padding "
                     "at both ends): use padding=0, output_padding=0 and cut the output yourself")
    elif (tuple(module.padding), tuple(module.output_padding)) != expected:
        notes.append(f"{described} is torch padding={expected[0]}, output_padding={expected[1]}; torch has "
                     f"padding={tuple(module.padding)}, output_padding={tuple(module.output_padding)}")
    if module.groups != 1:
        notes.append(f"torch groups={module.groups}; Keras Conv2DTranspose has one group")
    return notes


def _is_depthwise(module) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups == module.in_channels


def _depthwise_spec(keras: str, torch_name: str) -> WeightSpec:
    def to_keras(context, weight):
        return (depthwise_weight_to_keras(weight, context.keras_layer.depth_multiplier),)

    return WeightSpec((keras,), (torch_name,), lambda context, k: (depthwise_kernel_to_torch(k),), to_keras)


def _is_separable(module) -> bool:
    children = dict(module.named_children())
    return (set(children) == {"depthwise", "pointwise"} and _is_depthwise(children["depthwise"])
            and isinstance(children["pointwise"], nn.Conv2d)
            and tuple(children["pointwise"].kernel_size) == (1, 1)
            and not any(True for _ in module.parameters(recurse=False)))


def _separable_refuse(layer, module) -> str | None:
    if module.depthwise.bias is not None:
        return ("torch depthwise has a bias; Keras SeparableConv2D has one bias, after the pointwise conv: "
                "build depthwise with bias=False")
    return None


def _separable_notes(layer, module) -> list[str]:
    notes = [f"depthwise: {n}" for n in _conv_notes(layer, module.depthwise, groups=False)]
    pointwise = module.pointwise
    if tuple(pointwise.stride) != (1, 1) or not _zero_padding(pointwise.padding) or pointwise.groups != 1:
        notes.append(f"pointwise: stride {tuple(pointwise.stride)}, padding {pointwise.padding}, groups "
                     f"{pointwise.groups}; Keras's pointwise conv has stride 1, no padding, one group")
    return notes


# --- PReLU -------------------------------------------------------------------------------------

def _prelu_refuse(layer, module) -> str | None:
    shape = tuple(layer.alpha.shape)
    if sum(s > 1 for s in shape) > 1:
        return (f"Keras alpha {shape} has a slope per position (shared_axes={layer.shared_axes}); nn.PReLU "
                "has one per channel (num_parameters=C) or one in all: give Keras shared_axes for every axis "
                "but the channels (e.g. shared_axes=[1, 2] for (H, W, C) inputs)")
    return None


def _prelu_notes(layer, module) -> list[str]:
    """nn.PReLU's slopes act along dim 1. That is Keras's axis for 2-D inputs (batch, features)
    and, after step_parity's NHWC -> NCHW, for channels-last 4-D inputs; anywhere else the torch
    module must move the axis itself."""
    shape = tuple(layer.alpha.shape)
    axes = [i for i, s in enumerate(shape) if s > 1]
    if axes and not (len(shape) == 1 or (len(shape) == 3 and axes[0] == 2)):
        return [f"Keras alpha {shape} varies along input axis {axes[0] + 1}; nn.PReLU acts along dim 1 of "
                "its input: the torch module must see that axis there (step_parity moves only the channels "
                "of 4-D NHWC inputs)"]
    return []


# --- recurrent layers ----------------------------------------------------------------------------

RNN_KINDS = ("simple_rnn", "lstm", "gru")
_BATCH_FIRST = ("batch_first=False: it reads (time, batch, features), Keras (batch, time, features): build "
                "it with batch_first=True")
_BIAS_HH_WHY = ("Keras has one bias where torch adds bias_ih and bias_hh; with both trainable an update "
                "moves their sum twice as far: freeze it at zero (the transfer writes the zeros)")


def _rnn_specs(order: tuple[int, ...] | None, two_biases: bool) -> tuple[WeightSpec, ...]:
    """kernel -> weight_ih_l0, recurrent_kernel -> weight_hh_l0 (transposed, gate blocks in
    ``order``), and the bias: Keras's one bias -> bias_ih_l0 with bias_hh_l0 = 0 frozen (torch ->
    Keras: their sum), or (``two_biases``, GRU reset_after) its two rows -> bias_ih_l0,
    bias_hh_l0."""

    def gates(value, axis=0):
        return value if order is None else gate_blocks(value, order, axis)

    def kernel_spec(keras, torch_name):
        return WeightSpec((keras,), (torch_name,), lambda context, k: (gates(k.T),),
                          lambda context, w: (gates(w).T,))

    if two_biases:
        bias = WeightSpec(("bias",), ("bias_ih_l0", "bias_hh_l0"),
                          lambda context, b: (gates(b[0]), gates(b[1])),
                          lambda context, ih, hh: (np.stack([gates(ih), gates(hh)]),))
    else:
        bias = WeightSpec(("bias",), ("bias_ih_l0", "bias_hh_l0"),
                          lambda context, b: (gates(b), np.zeros_like(b)),
                          lambda context, ih, hh: (gates(ih + hh),),
                          frozen=("bias_hh_l0",), frozen_why=_BIAS_HH_WHY)
    return kernel_spec("kernel", "weight_ih_l0"), kernel_spec("recurrent_kernel", "weight_hh_l0"), bias


def _activation_name(function) -> str:
    return getattr(function, "__name__", repr(function))


def _rnn_refuse(kind: str, layer, module) -> str | None:
    """Why a Keras recurrent layer cannot be computed by ``module`` (either direction)."""
    cell = layer.cell
    activation = _activation_name(cell.activation)
    torch_name = f"nn.{type(module).__name__}"
    if kind == "simple_rnn":
        if activation != module.nonlinearity:
            return (f"activation {activation!r}, but {torch_name}(nonlinearity={module.nonlinearity!r}) "
                    "(nn.RNN has tanh and relu)")
    else:
        if activation != "tanh":
            return f"activation {activation!r}: {torch_name}'s is tanh, fixed"
        recurrent = _activation_name(cell.recurrent_activation)
        if recurrent != "sigmoid":
            return (f"recurrent_activation {recurrent!r}: {torch_name}'s gates use the sigmoid, fixed "
                    "(Keras 2's default was hard_sigmoid): build Keras with recurrent_activation='sigmoid'")
    if kind == "gru" and not cell.reset_after:
        return ("reset_after=False applies the reset gate before the recurrent matmul, (r * h) @ U; nn.GRU "
                "only computes r * (h @ U + b_hn), Keras's reset_after=True (Keras 3's default)")
    if cell.dropout or cell.recurrent_dropout:
        return (f"dropout={cell.dropout}, recurrent_dropout={cell.recurrent_dropout}: Keras draws random "
                "masks torch cannot reproduce: set both to 0")
    return None


def _rnn_torch_refuse(module) -> str | None:
    if not module.batch_first:
        return _BATCH_FIRST
    if module.num_layers != 1:
        return (f"num_layers={module.num_layers}: one Keras layer is one torch layer here: build one "
                "num_layers=1 module per Keras layer")
    if getattr(module, "proj_size", 0):
        return f"proj_size={module.proj_size} (a projected LSTM) has no Keras counterpart"
    return None


def _rnn_notes(layer, module) -> list[str]:
    notes = []
    if layer.go_backwards:
        notes.append("Keras go_backwards=True reads the sequence last step first (and returns the outputs in "
                     "that reversed order): the torch module must run on x.flip(1)")
    if layer.stateful:
        notes.append("Keras stateful=True carries the last states into the next batch; the torch module "
                     "starts from zeros unless it passes them")
    return notes


def _rnn_kind(kind: str, keras: str, torch_class: type, order, two_biases: bool) -> Kind:
    return Kind(kind, (keras,), (torch_class,), _rnn_specs(order, two_biases),
                layout=(f" (Keras {keras} kernels are (in, gates*units), torch weights (gates*units, in), "
                        "same units, bias=use_bias)"),
                accepts=lambda module: not module.bidirectional,
                refuse=lambda layer, module: _rnn_refuse(kind, layer, module),
                torch_refuse=_rnn_torch_refuse, notes=_rnn_notes)


def _bidirectional_inner(layer) -> str | None:
    kind = keras_kind(layer.forward_layer)
    return kind if kind in RNN_KINDS else None


def _bidirectional_refuse(layer, module) -> str | None:
    forward, backward = layer.forward_layer, layer.backward_layer
    inner = _bidirectional_inner(layer)
    if inner is None:
        return f"Bidirectional wraps a {type(forward).__name__}: only LSTM, GRU and SimpleRNN are supported"
    if type(backward) is not type(forward):
        return (f"backward_layer is a {type(backward).__name__}, forward_layer a {type(forward).__name__}: a "
                "bidirectional torch module runs one kind both ways")
    if not isinstance(module, RECORDS[inner].torch):
        return (f"Keras Bidirectional({type(forward).__name__}) against torch {type(module).__name__}: build "
                f"{RECORDS[inner].torch[0].__name__}(bidirectional=True)")
    if forward.go_backwards or not backward.go_backwards:
        return ("forward_layer reads backwards and backward_layer forwards: torch's first direction reads "
                "forwards")
    for side, inner_layer in (("forward_layer", forward), ("backward_layer", backward)):
        reason = _rnn_refuse(inner, inner_layer, module)
        if reason:
            return f"{side}: {reason}"
    return None


def _bidirectional_notes(layer, module) -> list[str]:
    notes = []
    units = layer.forward_layer.cell.units
    forward, backward = f"out[..., :{units}]", f"out[..., {units}:]"
    merge = {"sum": f"{forward} + {backward}", "ave": f"({forward} + {backward}) / 2",
             "mul": f"{forward} * {backward}", None: f"({forward}, {backward}) (Keras returns the pair)"}
    if layer.merge_mode != "concat":
        notes.append(f"merge_mode={layer.merge_mode!r}: torch concatenates the two directions; the torch "
                     f"module must merge them itself: {merge[layer.merge_mode]}")
    if not layer.return_sequences:
        notes.append(f"return_sequences=False: Keras's backward half is the output after the whole reversed "
                     f"sequence, torch's out[:, 0, {units}:] (h_n[1]), not out[:, -1, {units}:]")
    return notes + _rnn_notes(layer.forward_layer, module)  # forward_layer: go_backwards=False


def _bidirectional_variables(layer) -> dict:
    out = {f"forward/{variable_name(v)}": v for v in layer.forward_layer.weights}
    out.update({f"backward/{variable_name(v)}": v for v in layer.backward_layer.weights})
    return out


def _bidirectional_specs(layer) -> tuple[WeightSpec, ...]:
    inner = RECORDS[_bidirectional_inner(layer)].weights
    return (tuple(spec.renamed("forward/", "") for spec in inner)
            + tuple(spec.renamed("backward/", "_reverse") for spec in inner))


# --- multi-head attention ------------------------------------------------------------------------

def _mha(layer, name: str):
    """A MultiHeadAttention setting or sublayer: Keras 3's public name (``num_heads``), Keras 2's
    private one (``_num_heads``)."""
    return getattr(layer, name) if hasattr(layer, name) else getattr(layer, "_" + name)


def _mha_variables(layer) -> dict:
    out = {}
    for prefix, sub in (("query", "query_dense"), ("key", "key_dense"), ("value", "value_dense"),
                        ("output", "output_dense")):
        out.update({f"{prefix}/{variable_name(v)}": v for v in _mha(layer, sub).weights})
    return out


def _mha_heads(context: PairContext) -> tuple[int, int]:
    return _mha(context.keras_layer, "num_heads"), _mha(context.keras_layer, "key_dim")


def _mha_in_kernels_to_torch(context, q, k, v):
    return (np.concatenate([w.reshape(w.shape[0], -1).T for w in (q, k, v)]),)


def _mha_in_kernels_to_keras(context, weight):
    heads, size = _mha_heads(context)
    return tuple(w.T.reshape(w.shape[1], heads, size) for w in np.split(weight, 3))


def _mha_in_biases_to_keras(context, bias):
    heads, size = _mha_heads(context)
    return tuple(b.reshape(heads, size) for b in np.split(bias, 3))


def _mha_out_kernel_to_keras(context, weight):
    heads, size = _mha_heads(context)
    return (weight.T.reshape(heads, size, weight.shape[0]),)


def _mha_refuse(layer, module) -> str | None:
    heads, size, value_size = _mha(layer, "num_heads"), _mha(layer, "key_dim"), _mha(layer, "value_dim")
    embed = module.embed_dim
    if heads != module.num_heads:
        return f"num_heads differ: Keras {heads}, torch {module.num_heads}"
    if heads * size != embed:
        return (f"Keras key_dim * num_heads = {size} * {heads} = {size * heads}, torch embed_dim {embed}: "
                "nn.MultiheadAttention's heads are embed_dim / num_heads wide")
    if value_size != size:
        return (f"Keras value_dim {value_size} != key_dim {size}: nn.MultiheadAttention's value heads are "
                "embed_dim / num_heads wide too")
    variables = _mha_variables(layer)
    sizes = {name: int(variables[f"{name}/kernel"].shape[0]) for name in ("query", "key", "value")}
    sizes["output"] = int(variables["output/kernel"].shape[-1])
    other = {name: n for name, n in sizes.items() if n != embed}
    if other:
        sizes = ", ".join(f"{name} size {n}" for name, n in other.items())
        return (f"Keras {sizes} != embed_dim {embed}: only the packed in-projection (query, key, value and "
                "output all embed_dim wide) is matched")
    axes = _mha(layer, "attention_axes")
    if axes is not None and tuple(axes) not in ((1,), (-2,)):
        return f"attention_axes={axes}: torch attends over the one sequence axis"
    if _mha(layer, "dropout") or module.dropout:
        return (f"attention dropout Keras {_mha(layer, 'dropout')}, torch {module.dropout}: random masks "
                "cannot be matched: set both to 0")
    return None


def _mha_notes(layer, module) -> list[str]:
    scale = 1.0 / math.sqrt(_mha(layer, "key_dim"))
    keras_scale = float(np.float32(scale))
    if layer.compute_dtype == "float64" and keras_scale != scale:
        return [f"Keras scales the attention scores by float32(1/sqrt(key_dim)) = {keras_scale!r} even in "
                f"float64 (its ops.cast of a Python float goes through float32), torch by {scale!r}: "
                f"{abs(keras_scale / scale - 1):.1e} relative apart; a key_dim that is a power of 4 (1, 4, "
                "16, 64, ...) makes both exact"]
    return []


def _mha_torch_refuse(module) -> str | None:
    if not module.batch_first:
        return _BATCH_FIRST
    if not module._qkv_same_embed_dim:
        return (f"kdim={module.kdim}, vdim={module.vdim} differ from embed_dim={module.embed_dim} (separate "
                "q/k/v projections): only the packed in-projection is matched")
    if module.bias_k is not None:
        return "add_bias_kv=True has no Keras counterpart"
    if module.add_zero_attn:
        return "add_zero_attn=True has no Keras counterpart"
    return None


_MHA_WEIGHTS = (
    WeightSpec(("query/kernel", "key/kernel", "value/kernel"), ("in_proj_weight",), _mha_in_kernels_to_torch,
               _mha_in_kernels_to_keras),
    WeightSpec(("query/bias", "key/bias", "value/bias"), ("in_proj_bias",),
               lambda context, q, k, v: (np.concatenate([b.reshape(-1) for b in (q, k, v)]),),
               _mha_in_biases_to_keras),
    WeightSpec(("output/kernel",), ("out_proj.weight",),
               lambda context, k: (k.reshape(-1, k.shape[-1]).T,), _mha_out_kernel_to_keras),
    _one("output/bias", "out_proj.bias"),
)

# --- the registry --------------------------------------------------------------------------------

_CONV_LAYOUT = " (Keras kernels are HWIO (kh, kw, in, out), torch weights OIHW (out, in, kh, kw))"
_RECORDS = (
    Kind("dense", ("Dense",), (nn.Linear,),
         (WeightSpec(("kernel",), ("weight",), _dense_kernel_to_torch, _dense_kernel_to_keras),
          _one("bias", "bias")),
         layout=" (Keras kernels are (in, out), nn.Linear weights (out, in))"),
    Kind("conv1d", ("Conv1D",), (nn.Conv1d,),
         (_one("kernel", "weight", _reverse_axes, _reverse_axes), _one("bias", "bias")),
         layout=" (Keras Conv1D kernels are (k, in, out), torch weights (out, in, k))", notes=_conv_notes),
    Kind("conv2d", ("Conv2D",), (nn.Conv2d,),
         (_one("kernel", "weight", _hwio_to_oihw, _oihw_to_hwio), _one("bias", "bias")),
         layout=_CONV_LAYOUT, notes=_conv_notes),
    Kind("conv2d_transpose", ("Conv2DTranspose",), (nn.ConvTranspose2d,),
         (_one("kernel", "weight", _hwio_to_oihw, _oihw_to_hwio), _one("bias", "bias")),
         layout=(" (Keras Conv2DTranspose kernels are (kh, kw, out, in), nn.ConvTranspose2d weights "
                 "(in, out, kh, kw))"), notes=_conv_transpose_notes),
    Kind("depthwise_conv2d", ("DepthwiseConv2D",), (nn.Conv2d,),
         (_depthwise_spec("kernel", "weight"), _one("bias", "bias")), keras_variables=_depthwise_variables,
         layout=(" (Keras depthwise kernels are (kh, kw, in, multiplier), torch Conv2d(groups=in) weights "
                 "(in*multiplier, 1, kh, kw))"), accepts=_is_depthwise,
         notes=lambda layer, module: _conv_notes(layer, module, groups=False)),
    Kind("separable_conv2d", ("SeparableConv2D",), (nn.Module,),
         (_depthwise_spec("depthwise_kernel", "depthwise.weight"),
          _one("pointwise_kernel", "pointwise.weight", _hwio_to_oihw, _oihw_to_hwio),
          _one("bias", "pointwise.bias")),
         layout=(" (the torch module has children depthwise = Conv2d(in, in*m, k, groups=in, bias=False) and "
                 "pointwise = Conv2d(in*m, out, 1))"),
         accepts=_is_separable, refuse=_separable_refuse, notes=_separable_notes),
    Kind("batchnorm", ("BatchNormalization",), (nn.modules.batchnorm._BatchNorm,),
         (_one("gamma", "weight"), _one("beta", "bias"), _one("moving_mean", "running_mean"),
          _one("moving_variance", "running_var")), notes=_batchnorm_notes),
    Kind("embedding", ("Embedding",), (nn.Embedding,), (_one("embeddings", "weight"),),
         notes=_embedding_notes),
    Kind("layernorm", ("LayerNormalization",), (nn.LayerNorm,),
         (_one("gamma", "weight"), _one("beta", "bias")), notes=_layernorm_notes),
    Kind("prelu", ("PReLU",), (nn.PReLU,),
         (WeightSpec(("alpha",), ("weight",), lambda context, a: (a.reshape(-1),),
                     lambda context, w: (w.reshape(tuple(context.keras_layer.alpha.shape)),)),),
         layout=" (nn.PReLU(num_parameters=C) has one slope per channel, nn.PReLU() one in all)",
         refuse=_prelu_refuse, notes=_prelu_notes),
    _rnn_kind("simple_rnn", "SimpleRNN", nn.RNN, None, False),
    _rnn_kind("lstm", "LSTM", nn.LSTM, None, False),
    _rnn_kind("gru", "GRU", nn.GRU, GRU_GATES, True),
    Kind("bidirectional", ("Bidirectional",), (nn.RNN, nn.LSTM, nn.GRU),
         layout=" (both directions as their recurrent kind; the backward one's torch tensors end in "
                "_reverse)",
         accepts=lambda module: module.bidirectional, refuse=_bidirectional_refuse,
         torch_refuse=_rnn_torch_refuse, notes=_bidirectional_notes, keras_variables=_bidirectional_variables,
         specs=_bidirectional_specs),
    Kind("multi_head_attention", ("MultiHeadAttention",), (nn.MultiheadAttention,), _MHA_WEIGHTS,
         layout=(" (Keras query/key/value kernels (E, heads, key_dim) pack into in_proj_weight (3E, E), the "
                 "output kernel (heads, key_dim, E) into out_proj.weight (E, E))"),
         refuse=_mha_refuse, torch_refuse=_mha_torch_refuse, notes=_mha_notes,
         keras_variables=_mha_variables),
)
RECORDS: dict[str, Kind] = {record.name: record for record in _RECORDS}
KINDS = tuple(RECORDS)
KERAS_CLASSES = {name: record.keras[0] for name, record in RECORDS.items()}
TORCH_CLASSES = {name: record.torch for name, record in RECORDS.items()}
# (Keras variable names, torch tensor names) per kind (Bidirectional's depend on the layer it wraps)
WEIGHT_NAMES = {name: tuple((spec.keras, spec.torch) for spec in record.weights)
                for name, record in RECORDS.items()}


# --- matching ------------------------------------------------------------------------------------

@dataclass
class WeightMap:
    """One Keras variable and one torch tensor of a :class:`WeightGroup`: names and conversions.

    ``to_torch``/``to_keras`` convert this variable alone; they exist where the group allows it
    (one Keras variable, at most one trainable torch tensor; ``to_keras``: one torch tensor as
    well) and otherwise raise :class:`TransferError` naming the group: convert such weights with
    :meth:`LayerMatch.to_torch_values`.
    """

    keras_layer: str
    keras_name: str          # "kernel", "bias", "gamma", "forward/kernel", "query/kernel", ...
    torch_name: str          # full path in the module: "conv1.weight", "0.running_mean", ...
    kind: str
    trainable: bool
    to_torch: Callable[[np.ndarray], np.ndarray]
    to_keras: Callable[[np.ndarray], np.ndarray]
    keras_variable: object = field(repr=False, default=None)


@dataclass
class WeightGroup:
    """Keras variables <-> torch tensors that convert together (a :class:`WeightSpec` applied)."""

    keras_layer: str
    kind: str
    keras_names: tuple
    keras_variables: tuple = field(repr=False)
    torch_names: tuple
    trainable: tuple         # per torch tensor
    spec: WeightSpec = field(repr=False)
    context: PairContext = field(repr=False)

    def to_torch(self, *keras_values) -> tuple:
        return tuple(self.spec.to_torch(self.context, *[np.asarray(v) for v in keras_values]))

    def to_keras(self, *torch_values) -> tuple:
        return tuple(self.spec.to_keras(self.context, *[np.asarray(v) for v in torch_values]))

    def _refuse_alone(self, *args):
        raise TransferError(f"{self.keras_layer}/{'+'.join(self.keras_names)} <-> "
                            f"{', '.join(self.torch_names)} convert together (not one Keras variable to one "
                            "torch tensor): use LayerMatch.to_torch_values(variables, values), not the "
                            "per-variable WeightMap")

    def maps(self) -> list[WeightMap]:
        alone = len(self.keras_variables) == 1 and sum(self.trainable) <= 1
        out = []
        for index, (torch_name, trainable) in enumerate(zip(self.torch_names, self.trainable)):
            def to_torch(value, index=index):
                return self.to_torch(value)[index]

            def to_keras(value):
                return self.to_keras(value)[0]

            for keras_name, variable in zip(self.keras_names, self.keras_variables):
                out.append(WeightMap(self.keras_layer, keras_name, torch_name, self.kind, trainable,
                                     to_torch if alone else self._refuse_alone,
                                     to_keras if alone and len(self.torch_names) == 1 else self._refuse_alone,
                                     variable))
        return out


@dataclass
class LayerMatch:
    """The pairing of two models' weighted layers: what fits, what does not, what differs.

    ``pairs``: (Keras layer, torch module path, kind, how matched); ``groups``: one
    :class:`WeightGroup` per set of weights that convert together; ``weights``: the
    :class:`WeightMap` view of them, one per (Keras variable, torch tensor); ``problems``:
    reasons the weights cannot be copied; ``notes``: conventions that differ (epsilon, momentum,
    ...), reported, not fatal.
    """

    pairs: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    groups: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def trainable(self) -> list[WeightMap]:
        return [w for w in self.weights if w.trainable]

    def torch_names(self, trainable_only: bool = True) -> list[str]:
        """The torch tensors of the match, in order (the trainable ones by default)."""
        return [name for g in self.groups for name, trainable in zip(g.torch_names, g.trainable)
                if trainable or not trainable_only]

    def to_torch_values(self, variables: Sequence, values: Sequence, trainable_only: bool = True) -> dict:
        """``{torch name: array}`` from Keras-layout ``values`` of the Keras ``variables`` (same
        order): parameters, gradients or optimizer slots, converted group by group (the
        conversions are linear). Groups none of whose variables are given are left out; a group
        given in part is refused."""
        by_id = {id(v): x for v, x in zip(variables, values)}
        out = {}
        for group in self.groups:
            given = [id(v) in by_id for v in group.keras_variables]
            if not any(given):
                continue
            if not all(given):
                raise TransferError(f"{group.keras_layer}/{'+'.join(group.keras_names)} convert together: "
                                    "give all of them")
            converted = group.to_torch(*[by_id[id(v)] for v in group.keras_variables])
            for name, value, trainable in zip(group.torch_names, converted, group.trainable):
                if trainable or not trainable_only:
                    out[name] = value
        return out

    def report(self) -> str:
        """A human-readable table of the pairing, then the problems and notes, one per line."""
        from tabulate import tabulate

        rows = [[keras_name, kind, torch_path, how] for keras_name, torch_path, kind, how in self.pairs]
        lines = [tabulate(rows, headers=["Keras layer", "kind", "torch module", "matched by"])]
        lines += [f"problem: {p}" for p in self.problems] + [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def raise_if_problems(self, direction: str) -> None:
        if self.problems:
            count = len(self.problems)
            raise TransferError(f"cannot transfer weights {direction}: {count} problem{'s' * (count > 1)}: "
                                + "; ".join(self.problems))


def keras_apis() -> list:
    """The Keras packages a model may come from: Keras 3 (``keras``) and, once imported (``import
    tf_keras``, or ``tf.keras`` under ``TF_USE_LEGACY_KERAS=1``), Keras 2 (``tf_keras``)."""
    import keras

    legacy = sys.modules.get("tf_keras")
    return [keras] if legacy is None else [keras, legacy]


def _keras_classes(class_names) -> list:
    return [c for api in keras_apis() for c in (getattr(api.layers, name, None) for name in class_names)
            if c is not None]


def keras_layer_is(layer, *class_names: str) -> bool:
    """Whether ``layer`` is a ``keras.layers.<name>`` or a ``tf_keras.layers.<name>`` of one of the
    names."""
    return any(isinstance(layer, c) for c in _keras_classes(class_names))


def keras_kind(layer) -> str | None:
    """The record of a Keras layer: of the records whose class it is an instance of, the most
    specific (Keras 2's ``Conv2DTranspose`` subclasses its ``Conv2D``)."""
    found = [(len(c.__mro__), name) for name, record in RECORDS.items() for c in _keras_classes(record.keras)
             if isinstance(layer, c)]
    return max(found)[1] if found else None


def torch_kind(module: nn.Module) -> str | None:
    """The first kind whose record accepts ``module`` (an ``nn.Conv2d`` is ``conv2d`` here even
    when its groups make it a depthwise conv too: the Keras side decides the record)."""
    for name, record in RECORDS.items():
        if record.accepts_torch(module):
            return name
    return None


def _keras_children(layer) -> list:
    if any(isinstance(layer, api.Model) for api in keras_apis()):
        return [c for c in layer.layers if not keras_layer_is(c, "InputLayer")]
    return [c for c in layer._flatten_layers(include_self=False, recursive=False)
            if not keras_layer_is(c, "InputLayer")]


def keras_leaves(layer):
    """Every leaf layer of a Keras model in order (supported kinds are leaves)."""
    children = _keras_children(layer)
    if keras_kind(layer) or not children:
        yield layer
        return
    for child in children:
        yield from keras_leaves(child)


def flatten_input_hwc(layer):
    """(H, W, C) of a Keras ``Flatten``'s channels-last 4-D input; None if no permutation is
    needed (other ranks, channels_first); ``_UNSET`` when Keras cannot tell (subclassed models)."""
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return None
    try:
        shape = tuple(layer.input.shape)
    except (AttributeError, ValueError):
        return _UNSET
    if len(shape) != 4:
        return None
    if any(s is None for s in shape[1:]):
        return _UNSET
    return tuple(int(s) for s in shape[1:])


def keras_weighted_layers(model, flatten_shapes: dict | None = None):
    """``[(name, layer, kind, hwc)]`` for the layers with weights, in order.

    ``hwc`` is the (H, W, C) of the channels-last flatten feeding a ``Dense``, else None;
    ``flatten_shapes`` overrides it per Dense name. Layers with trainable weights whose kind is
    not supported are listed with ``kind`` None; unsupported layers holding only non-trainable
    weights (e.g. a ``Normalization`` layer's statistics) are left out: nothing trains them.
    """
    flatten_shapes = dict(flatten_shapes or {})
    out, pending = [], None
    for layer in keras_leaves(model):
        if keras_layer_is(layer, "Flatten"):
            pending = flatten_input_hwc(layer)
            continue
        kind = keras_kind(layer)
        if not layer.weights or (kind is None and not layer.trainable_weights):
            continue
        hwc = pending if kind == "dense" else None
        if layer.name in flatten_shapes:
            hwc = flatten_shapes.pop(layer.name)
            hwc = None if hwc is None else tuple(int(s) for s in hwc)
        out.append((layer.name, layer, kind, hwc))
        pending = None
    if flatten_shapes:
        raise TransferError(f"flatten_shapes names no Dense layer of the Keras model: "
                            f"{sorted(flatten_shapes)}")
    return out


def torch_weighted_modules(module: nn.Module):
    """``[(path, module, kind)]`` for the modules of a supported kind holding parameters or
    buffers (their children included: the kind owns them, e.g. nn.MultiheadAttention's
    ``out_proj``), and the other modules holding parameters of their own (``kind`` None), in
    registration order. Unsupported modules with buffers only (nothing trains them) are left
    out."""
    out, owned = [], []
    for path, sub in module.named_modules():
        if any(path == p or path.startswith(p + ".") or p == "" for p in owned):
            continue
        kind = torch_kind(sub)
        if kind is not None:
            if any(True for _ in sub.parameters()) or any(True for _ in sub.buffers()):
                out.append((path, sub, kind))
                owned.append(path)
        elif any(True for _ in sub.parameters(recurse=False)):
            out.append((path, sub, kind))
    return out


def _describe_keras(name, layer) -> str:
    return f"Keras layer {name!r} ({type(layer).__name__})"


def _describe_torch(path, module) -> str:
    return f"torch module {path or '<root>'!r} ({type(module).__name__})"


def pair_entries(keras_entries: list, torch_entries: list, name_map: dict) -> tuple:
    """Pair Keras entries with torch entries (each a tuple whose first item is the name or path):
    ``name_map``'s pairs first, then the rest in order.

    Returns ``(pairs, rest_keras, rest_torch, unknown_keras, unknown_torch)``: ``pairs`` as
    ``(keras_entry, torch_entry, "name_map" | "order")``; the entries left over on either side
    (past the shorter list); the names ``name_map`` gives that are not among the entries.
    """
    by_keras = {entry[0]: entry for entry in keras_entries}
    by_torch = {entry[0]: entry for entry in torch_entries}
    unknown_keras = [k for k in name_map if k not in by_keras]
    unknown_torch = [t for t in name_map.values() if t not in by_torch]
    pairs = [(by_keras[k], by_torch[t], "name_map") for k, t in name_map.items()
             if k in by_keras and t in by_torch]
    rest_keras = [e for e in keras_entries if e[0] not in name_map]
    rest_torch = [e for e in torch_entries if e[0] not in set(name_map.values())]
    pairs += [(k, t, "order") for k, t in zip(rest_keras, rest_torch)]
    return pairs, rest_keras[len(rest_torch):], rest_torch[len(rest_keras):], unknown_keras, unknown_torch


def match_layers(keras_model, torch_module: nn.Module, name_map: dict | None = None,
                 flatten_shapes: dict | None = None) -> LayerMatch:
    """Pair the weighted layers of a Keras model and a torch module (see the module docstring)."""
    name_map = dict(name_map or {})
    match = LayerMatch()
    keras_layers = keras_weighted_layers(keras_model, flatten_shapes)
    torch_modules = torch_weighted_modules(torch_module)
    pairs, rest_keras, rest_torch, unknown_keras, unknown_torch = pair_entries(keras_layers, torch_modules,
                                                                               name_map)
    for keras_name in unknown_keras:
        match.problems.append(f"name_map names Keras layer {keras_name!r}, which the model has not "
                              f"(weighted layers: {', '.join(e[0] for e in keras_layers)})")
    for torch_path in unknown_torch:
        match.problems.append(f"name_map names torch module {torch_path!r}, which the module has not "
                              f"(modules with weights: {', '.join(e[0] for e in torch_modules)})")
    for name, layer, _, _ in rest_keras:
        match.problems.append(f"{_describe_keras(name, layer)} has no torch counterpart (left over)")
    for path, module, _ in rest_torch:
        match.problems.append(f"{_describe_torch(path, module)} has no Keras counterpart (left over)")
    trainable_ids = {id(v) for v in keras_model.trainable_variables}
    for (keras_name, layer, kind, hwc), (torch_path, module, tkind), how in pairs:
        match.pairs.append((keras_name, torch_path, kind or "unsupported", how))
        keras_side, torch_side = _describe_keras(keras_name, layer), _describe_torch(torch_path, module)
        torch_reason = RECORDS[tkind].torch_refuse(module) if tkind is not None else None
        if kind is None or tkind is None:
            side = keras_side if kind is None else torch_side
            match.problems.append(f"{side} has weights but is not a supported kind ({', '.join(KINDS)})")
        elif torch_reason:
            match.problems.append(f"{torch_side} has weights but is not a supported kind in this "
                                  f"configuration: {torch_reason}")
        elif not RECORDS[kind].accepts_torch(module):
            hint = "; the order differs? pass name_map={keras_layer: torch_path}" if how == "order" else ""
            match.problems.append(f"{keras_side} is a {kind} layer but is paired (by {how}) with "
                                  f"{torch_side}, a {tkind}{hint}")
        else:
            reason = RECORDS[kind].refuse(layer, module)
            if reason:
                match.problems.append(f"{keras_side} cannot be matched exactly with {torch_side}: {reason}")
                continue
            _pair_weights(match, keras_name, layer, torch_path, module, RECORDS[kind], hwc, trainable_ids)
    _check_coverage(match, keras_model, torch_module)
    return match


def _flatten_problem(keras_name, layer, hwc) -> str | None:
    if hwc is _UNSET:
        return (f"Keras cannot tell the shape of the Flatten before Dense {keras_name!r}: pass "
                f"flatten_shapes={{{keras_name!r}: (H, W, C)}}, or None if the torch module flattens "
                "channels-last")
    if hwc is not None and int(np.prod(hwc)) != tuple(layer.kernel.shape)[0]:
        return (f"{_describe_keras(keras_name, layer)} follows a flatten of shape {hwc}, but its kernel has "
                f"{tuple(layer.kernel.shape)[0]} inputs")
    return None


def _pair_weights(match: LayerMatch, keras_name, layer, torch_path, module, record: Kind, hwc,
                  trainable_ids: set) -> None:
    if record.name == "dense" and _flatten_problem(keras_name, layer, hwc):
        match.problems.append(_flatten_problem(keras_name, layer, hwc))
        return
    context = PairContext(layer, module, None if record.name != "dense" else hwc)
    keras_vars = record.keras_variables(layer)
    tensors = dict(module.named_parameters())
    tensors.update((n, b) for n, b in module.named_buffers() if not n.endswith("num_batches_tracked"))
    prefix = f"{torch_path}." if torch_path else ""
    keras_side, torch_side = _describe_keras(keras_name, layer), _describe_torch(torch_path, module)
    for spec in record.weight_specs(layer):
        ks = [keras_vars.get(n) for n in spec.keras]
        ts = [tensors.get(n) for n in spec.torch]
        if all(k is None for k in ks) and all(t is None for t in ts):
            continue
        keras_label = f"{keras_name}/{'+'.join(spec.keras)}"
        if any(t is None for t in ts) or any(k is None for k in ks):
            if any(t is None for t in ts):
                has, lacks, what = keras_side, torch_side, "+".join(spec.keras)
            else:
                has, lacks, what = torch_side, keras_side, "+".join(spec.torch)
            match.problems.append(f"{has} has a {what} that {lacks} lacks (bias / center / scale / affine "
                                  "settings differ)")
            continue
        keras_shapes = [tuple(k.shape) for k in ks]
        try:
            expected = [tuple(a.shape) for a in spec.to_torch(context, *[np.zeros(s) for s in keras_shapes])]
        except ValueError as error:
            match.problems.append(f"{keras_label} {' + '.join(map(str, keras_shapes))} cannot be laid out "
                                  f"for torch ({error}){record.layout}")
            continue
        wrong = [(n, tuple(t.shape), e) for n, t, e in zip(spec.torch, ts, expected) if tuple(t.shape) != e]
        if wrong:
            name, shape, want = wrong[0]
            match.problems.append(f"{keras_label} {' + '.join(map(str, keras_shapes))} becomes {want} in "
                                  f"torch layout, but {prefix + name} is {shape}: the layers are configured "
                                  f"differently{record.layout}")
            continue
        keras_trainable = {id(k) in trainable_ids for k in ks}
        if len(keras_trainable) > 1:
            match.problems.append(f"{keras_label}: Keras trains some of these variables and not others")
            continue
        keras_trainable = keras_trainable.pop()
        trainable, problem = [], False
        for name, t in zip(spec.torch, ts):
            torch_trainable = isinstance(t, nn.Parameter) and t.requires_grad
            if name in spec.frozen:
                if torch_trainable:
                    match.problems.append(f"{keras_label} <-> {prefix + name}: {spec.frozen_why}: "
                                          f"{prefix + name}.requires_grad_(False)")
                    problem = True
            elif torch_trainable != keras_trainable:
                which = ("Keras trains it, torch does not (a buffer or requires_grad=False)"
                         if keras_trainable else "torch trains it, Keras does not (non-trainable)")
                match.problems.append(f"{keras_label} <-> {prefix + name}: {which}")
                problem = True
            trainable.append(torch_trainable)
        if problem:
            continue
        group = WeightGroup(keras_name, record.name, spec.keras, tuple(ks),
                            tuple(prefix + n for n in spec.torch), tuple(trainable), spec, context)
        match.groups.append(group)
        match.weights.extend(group.maps())
    match.notes.extend(f"{keras_name} <-> {torch_path}: {note}" for note in record.notes(layer, module))


def _check_coverage(match: LayerMatch, keras_model, torch_module) -> None:
    """Every trainable variable and parameter must be in a pair: nothing is left behind silently."""
    if match.problems:
        return
    covered_keras = {id(v) for g in match.groups for v in g.keras_variables}
    covered_torch = {name for g in match.groups for name in g.torch_names}
    for v in keras_model.trainable_variables:
        if id(v) not in covered_keras:
            match.problems.append(f"Keras variable {variable_path(v)} belongs to no supported layer")
    for name, _ in torch_module.named_parameters():
        if name not in covered_torch:
            match.problems.append(f"torch parameter {name} belongs to no supported module")


def keras_state(match: LayerMatch) -> dict[str, np.ndarray]:
    """The Keras model's weights in torch layout, keyed by torch name (parameters and buffers,
    frozen ones such as an LSTM's zero ``bias_hh_l0`` included)."""
    out = {}
    for group in match.groups:
        values = group.to_torch(*[np.asarray(v.numpy()) for v in group.keras_variables])
        out.update((name, np.ascontiguousarray(value)) for name, value in zip(group.torch_names, values))
    return out


def load_torch_state(module: nn.Module, state: dict) -> None:
    """Copy ``{torch name: array}`` into ``module``'s parameters/buffers, checking every shape.

    Refuses (:class:`TransferError`) names the module lacks and arrays of the wrong shape, with
    a hint when an array looks like an untransposed Keras kernel (HWIO for a conv, (in, out)
    for a linear layer).
    """
    tensors = dict(module.named_parameters())
    tensors.update(module.named_buffers())
    unknown = sorted(set(state) - set(tensors))
    if unknown:
        raise TransferError(f"torch module has no tensors named {unknown}")
    for name, value in state.items():
        value = np.asarray(value)
        target = tensors[name]
        if tuple(value.shape) != tuple(target.shape):
            raise TransferError(_load_shape_message(name, tuple(value.shape), tuple(target.shape)))
    with torch.no_grad():
        for name, value in state.items():
            target = tensors[name]
            target.copy_(torch.as_tensor(np.ascontiguousarray(value)).to(target.device, target.dtype))


def _load_shape_message(name, got, expected) -> str:
    hint = ""
    if len(expected) == 4 and got == (expected[2], expected[3], expected[1], expected[0]):
        hint = " (an HWIO Keras conv kernel? torch wants OIHW: kernel.transpose(3, 2, 0, 1))"
    elif len(expected) == 3 and got == expected[::-1]:
        hint = " (a Keras Conv1D kernel (k, in, out)? torch wants (out, in, k): kernel.transpose(2, 1, 0))"
    elif len(expected) == 2 and got == expected[::-1]:
        hint = " (a Keras (in, out) kernel? nn.Linear wants (out, in): kernel.T)"
    return f"{name} has shape {got}, the module's is {expected}{hint}"


def keras_to_torch(keras_model, torch_module: nn.Module, name_map: dict | None = None,
                   flatten_shapes: dict | None = None) -> LayerMatch:
    """Copy every weight of ``keras_model`` into ``torch_module`` (parameters and BatchNorm buffers).

    Returns the :class:`LayerMatch` (with its notes); refuses with a one-line
    :class:`TransferError` when anything does not fit, before copying anything.
    """
    match = match_layers(keras_model, torch_module, name_map, flatten_shapes)
    match.raise_if_problems("Keras -> torch")
    load_torch_state(torch_module, keras_state(match))
    return match


def torch_to_keras(torch_module: nn.Module, keras_model, name_map: dict | None = None,
                   flatten_shapes: dict | None = None) -> LayerMatch:
    """Copy every weight of ``torch_module`` into ``keras_model``: the inverse of :func:`keras_to_torch`
    (an LSTM's bias becomes ``bias_ih + bias_hh``)."""
    match = match_layers(keras_model, torch_module, name_map, flatten_shapes)
    match.raise_if_problems("torch -> Keras")
    tensors = dict(torch_module.named_parameters())
    tensors.update(torch_module.named_buffers())
    for group in match.groups:
        values = group.to_keras(*[tensors[name].detach().cpu().numpy() for name in group.torch_names])
        for variable, value in zip(group.keras_variables, values):
            variable.assign(np.ascontiguousarray(value).astype(variable.dtype))
    return match
