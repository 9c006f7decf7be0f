"""Weights of common layers between a Keras model and a torch module: layouts, matching, copying.

=========  ====================  ===============================  ===============  =========================
kind       Keras layer           Keras weights (layout)           torch module     torch tensors (layout)
=========  ====================  ===============================  ===============  =========================
dense      Dense                 kernel (in, out), bias (out,)    nn.Linear        weight (out, in), bias
conv2d     Conv2D                kernel (kh, kw, in, out) HWIO    nn.Conv2d        weight (out, in, kh, kw)
                                 bias (out,)                                       OIHW, bias (out,)
batchnorm  BatchNormalization    gamma, beta, moving_mean,        nn.BatchNorm*d   weight, bias, running_mean,
                                 moving_variance (C,)                              running_var (C,)
embedding  Embedding             embeddings (vocab, dim)          nn.Embedding     weight (vocab, dim)
layernorm  LayerNormalization    gamma, beta (normalised shape)   nn.LayerNorm     weight, bias
=========  ====================  ===============================  ===============  =========================

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
running statistics (Keras the biased batch variance, torch the unbiased one).

Matching: the weighted layers of each model in order (Keras: ``model.layers``, recursively;
torch: ``named_modules()``, i.e. registration order), with ``name_map={"keras_layer":
"torch.module.path"}`` pairing named layers first. Anything that does not fit (kinds that
differ, shapes, leftover layers, weights of unsupported layers) is a *problem*; the copy
functions refuse with a one-line :class:`parity.transfer.TransferError` listing them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from parity.errors import TransferError

KINDS = ("dense", "conv2d", "batchnorm", "embedding", "layernorm")
# (Keras weight name, torch tensor name) per kind; BatchNorm's moving statistics are buffers.
WEIGHT_NAMES = {
    "dense": (("kernel", "weight"), ("bias", "bias")),
    "conv2d": (("kernel", "weight"), ("bias", "bias")),
    "batchnorm": (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                  ("moving_variance", "running_var")),
    "embedding": (("embeddings", "weight"),),
    "layernorm": (("gamma", "weight"), ("beta", "bias")),
}
KERAS_CLASSES = {"dense": "Dense", "conv2d": "Conv2D", "batchnorm": "BatchNormalization",
                 "embedding": "Embedding", "layernorm": "LayerNormalization"}
TORCH_CLASSES = {"dense": (nn.Linear,), "conv2d": (nn.Conv2d,),
                 "batchnorm": (nn.modules.batchnorm._BatchNorm,), "embedding": (nn.Embedding,),
                 "layernorm": (nn.LayerNorm,)}
_UNSET = object()


def _identity(value: np.ndarray) -> np.ndarray:
    return value


def _transpose(value: np.ndarray) -> np.ndarray:
    return value.T


def _hwio_to_oihw(value: np.ndarray) -> np.ndarray:
    return value.transpose(3, 2, 0, 1)


def _oihw_to_hwio(value: np.ndarray) -> np.ndarray:
    return value.transpose(2, 3, 1, 0)


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


@dataclass
class WeightMap:
    """One Keras variable and its torch tensor: names, shapes and the two conversions."""

    keras_layer: str
    keras_name: str          # "kernel", "bias", "gamma", ...
    torch_name: str          # full path in the module: "conv1.weight", "0.running_mean", ...
    kind: str
    trainable: bool
    to_torch: Callable[[np.ndarray], np.ndarray]
    to_keras: Callable[[np.ndarray], np.ndarray]
    keras_variable: object = field(repr=False, default=None)


@dataclass
class LayerMatch:
    """The pairing of two models' weighted layers: what fits, what does not, what differs.

    ``pairs``: (Keras layer, torch module path, kind, how matched); ``weights``: one
    :class:`WeightMap` per Keras variable; ``problems``: reasons the weights cannot be copied;
    ``notes``: conventions that differ (epsilon, momentum, ...), reported, not fatal.
    """

    pairs: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def trainable(self) -> list[WeightMap]:
        return [w for w in self.weights if w.trainable]

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


def keras_kind(layer) -> str | None:
    import keras

    for kind, name in KERAS_CLASSES.items():
        if isinstance(layer, getattr(keras.layers, name)):
            return kind
    return None


def torch_kind(module: nn.Module) -> str | None:
    for kind, classes in TORCH_CLASSES.items():
        if isinstance(module, classes):
            return kind
    return None


def _keras_children(layer) -> list:
    import keras

    if isinstance(layer, keras.Model):
        return list(layer.layers)
    return [c for c in layer._flatten_layers(include_self=False, recursive=False)
            if not isinstance(c, keras.layers.InputLayer)]


def _keras_leaves(layer):
    """Every leaf layer of a Keras model in order (supported kinds are leaves)."""
    children = _keras_children(layer)
    if keras_kind(layer) or not children:
        yield layer
        return
    for child in children:
        yield from _keras_leaves(child)


def _flatten_input_hwc(layer):
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
    import keras

    flatten_shapes = dict(flatten_shapes or {})
    out, pending = [], None
    for layer in _keras_leaves(model):
        if isinstance(layer, keras.layers.Flatten):
            pending = _flatten_input_hwc(layer)
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
    """``[(path, module, kind)]`` for the modules holding parameters of their own (or buffers,
    for a supported kind such as BatchNorm), in registration order; ``kind`` None for
    unsupported ones. Unsupported modules with buffers only (nothing trains them) are left out."""
    out = []
    for path, sub in module.named_modules():
        kind = torch_kind(sub)
        if any(True for _ in sub.parameters(recurse=False)) or (
                kind is not None and any(True for _ in sub.buffers(recurse=False))):
            out.append((path, sub, kind))
    return out


def _describe_keras(name, layer) -> str:
    return f"Keras layer {name!r} ({type(layer).__name__})"


def _describe_torch(path, module) -> str:
    return f"torch module {path or '<root>'!r} ({type(module).__name__})"


def match_layers(keras_model, torch_module: nn.Module, name_map: dict | None = None,
                 flatten_shapes: dict | None = None) -> LayerMatch:
    """Pair the weighted layers of a Keras model and a torch module (see the module docstring)."""
    name_map = dict(name_map or {})
    match = LayerMatch()
    keras_layers = keras_weighted_layers(keras_model, flatten_shapes)
    torch_modules = torch_weighted_modules(torch_module)
    by_keras = {entry[0]: entry for entry in keras_layers}
    by_torch = {entry[0]: entry for entry in torch_modules}
    for keras_name, torch_path in name_map.items():
        if keras_name not in by_keras:
            match.problems.append(f"name_map names Keras layer {keras_name!r}, which the model has not "
                                  f"(weighted layers: {', '.join(by_keras)})")
        if torch_path not in by_torch:
            match.problems.append(f"name_map names torch module {torch_path!r}, which the module has not "
                                  f"(modules with weights: {', '.join(by_torch)})")
    pairs = [(by_keras[k], by_torch[t], "name_map") for k, t in name_map.items()
             if k in by_keras and t in by_torch]
    rest_keras = [e for e in keras_layers if e[0] not in name_map]
    rest_torch = [e for e in torch_modules if e[0] not in set(name_map.values())]
    pairs += [(k, t, "order") for k, t in zip(rest_keras, rest_torch)]
    for name, layer, _, _ in rest_keras[len(rest_torch):]:
        match.problems.append(f"{_describe_keras(name, layer)} has no torch counterpart (left over)")
    for path, module, _ in rest_torch[len(rest_keras):]:
        match.problems.append(f"{_describe_torch(path, module)} has no Keras counterpart (left over)")
    trainable_ids = {id(v) for v in keras_model.trainable_variables}
    for (keras_name, layer, kind, hwc), (torch_path, module, tkind), how in pairs:
        match.pairs.append((keras_name, torch_path, kind or "unsupported", how))
        if kind is None or tkind is None:
            side = _describe_keras(keras_name, layer) if kind is None else _describe_torch(torch_path, module)
            match.problems.append(f"{side} has weights but is not a supported kind ({', '.join(KINDS)})")
        elif kind != tkind:
            hint = "; the order differs? pass name_map={keras_layer: torch_path}" if how == "order" else ""
            match.problems.append(f"{_describe_keras(keras_name, layer)} is a {kind} layer but is paired "
                                  f"(by {how}) with {_describe_torch(torch_path, module)}, a {tkind}{hint}")
        else:
            _pair_weights(match, keras_name, layer, torch_path, module, kind, hwc, trainable_ids)
    _check_coverage(match, keras_model, torch_module)
    return match


def _pair_weights(match: LayerMatch, keras_name, layer, torch_path, module, kind, hwc,
                  trainable_ids: set) -> None:
    keras_vars = {v.name: v for v in layer.weights}
    torch_tensors = dict(module.named_parameters(recurse=False))
    torch_tensors.update((n, b) for n, b in module.named_buffers(recurse=False) if n != "num_batches_tracked")
    prefix = f"{torch_path}." if torch_path else ""
    for keras_weight, torch_weight in WEIGHT_NAMES[kind]:
        k, t = keras_vars.get(keras_weight), torch_tensors.get(torch_weight)
        if k is None and t is None:
            continue
        if k is None or t is None:
            keras_side, torch_side = _describe_keras(keras_name, layer), _describe_torch(torch_path, module)
            has, lacks = (keras_side, torch_side) if t is None else (torch_side, keras_side)
            match.problems.append(f"{has} has a {keras_weight if t is None else torch_weight} that {lacks} "
                                  "lacks (bias / center / scale / affine settings differ)")
            continue
        to_torch, to_keras = _converters(kind, keras_weight)
        if kind == "dense" and keras_weight == "kernel" and hwc is _UNSET:
            match.problems.append(f"Keras cannot tell the shape of the Flatten before Dense {keras_name!r}: "
                                  f"pass flatten_shapes={{{keras_name!r}: (H, W, C)}}, or None if the torch "
                                  "module flattens channels-last")
            continue
        if kind == "dense" and keras_weight == "kernel" and hwc is not None:
            if int(np.prod(hwc)) != tuple(k.shape)[0]:
                match.problems.append(f"{_describe_keras(keras_name, layer)} follows a flatten of shape "
                                      f"{hwc}, but its kernel has {tuple(k.shape)[0]} inputs")
                continue
            to_torch, to_keras = _flatten_converters(hwc)
        expected = tuple(to_torch(np.empty(tuple(k.shape), dtype=np.float32)).shape)
        if expected != tuple(t.shape):
            match.problems.append(_shape_problem(keras_name, keras_weight, tuple(k.shape),
                                                 prefix + torch_weight, tuple(t.shape), expected, kind))
            continue
        trainable = isinstance(t, nn.Parameter) and t.requires_grad
        if (id(k) in trainable_ids) != trainable:
            which = ("Keras trains it, torch does not (a buffer or requires_grad=False)" if not trainable
                     else "torch trains it, Keras does not (non-trainable)")
            match.problems.append(f"{keras_name}/{keras_weight} <-> {prefix + torch_weight}: {which}")
            continue
        match.weights.append(WeightMap(keras_name, keras_weight, prefix + torch_weight, kind, trainable,
                                       to_torch, to_keras, k))
    match.notes.extend(_convention_notes(kind, keras_name, layer, torch_path, module))


def _flatten_converters(hwc):
    def to_torch(value):
        return flattened_kernel_to_torch(value, hwc)

    def to_keras(value):
        return flattened_weight_to_keras(value, hwc)

    return to_torch, to_keras


def _converters(kind: str, keras_weight: str):
    if keras_weight == "kernel" and kind == "dense":
        return _transpose, _transpose
    if keras_weight == "kernel" and kind == "conv2d":
        return _hwio_to_oihw, _oihw_to_hwio
    return _identity, _identity


def _shape_problem(keras_name, keras_weight, keras_shape, torch_name, torch_shape, expected, kind) -> str:
    layout = {"conv2d": " (Keras kernels are HWIO (kh, kw, in, out), torch weights OIHW (out, in, kh, kw))",
              "dense": " (Keras kernels are (in, out), nn.Linear weights (out, in))"}.get(kind, "")
    return (f"{keras_name}/{keras_weight} {keras_shape} becomes {expected} in torch layout, but {torch_name} "
            f"is {torch_shape}: the layers are configured differently{layout}")


def _close(a, b) -> bool:
    return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(a)))


def _convention_notes(kind, keras_name, layer, torch_path, module) -> list[str]:
    where = f"{keras_name} <-> {torch_path}"
    notes = []
    if kind in ("batchnorm", "layernorm") and not _close(layer.epsilon, module.eps):
        notes.append(f"{where}: epsilon differs: Keras {layer.epsilon:g}, torch {module.eps:g} "
                     "(defaults 1e-3 vs 1e-5: pass epsilon= to Keras or eps= to torch)")
    if kind == "batchnorm":
        if module.momentum is None:
            notes.append(f"{where}: torch momentum=None (a cumulative average) has no Keras equivalent")
        elif not _close(1.0 - layer.momentum, module.momentum):
            notes.append(f"{where}: momentum differs: Keras {layer.momentum:g} means torch "
                         f"{1.0 - layer.momentum:g}, torch has {module.momentum:g} (Keras keeps "
                         "momentum * old, torch momentum * new)")
        notes.append(f"{where}: running variance: Keras updates it with the biased batch variance, torch "
                     "with the unbiased one (x m/(m-1)); training outputs agree, moving statistics drift")
    if kind == "layernorm" and getattr(layer, "rms_scaling", False):
        notes.append(f"{where}: Keras rms_scaling=True is RMSNorm, not nn.LayerNorm")
    if kind == "conv2d":
        notes.extend(_conv_notes(where, layer, module))
    if kind == "embedding" and module.padding_idx is not None:
        notes.append(f"{where}: torch padding_idx={module.padding_idx} never updates that row; Keras does")
    return notes


def _conv_notes(where, layer, module) -> list[str]:
    notes = []
    if tuple(layer.strides) != tuple(module.stride):
        notes.append(f"{where}: strides differ: Keras {tuple(layer.strides)}, torch {tuple(module.stride)}")
    if tuple(layer.dilation_rate) != tuple(module.dilation):
        notes.append(f"{where}: dilation differs: Keras {tuple(layer.dilation_rate)}, "
                     f"torch {tuple(module.dilation)}")
    padding = module.padding
    kernel = tuple(module.kernel_size)
    if layer.padding == "valid" and padding not in ("valid", (0, 0)):
        notes.append(f"{where}: Keras padding 'valid', torch padding={padding}")
    if layer.padding == "same":
        odd_symmetric = all(k % 2 == 1 for k in kernel) and padding == tuple((k - 1) // 2 for k in kernel)
        if padding != "same" and not odd_symmetric:
            notes.append(f"{where}: Keras padding 'same' (extra row/column at the bottom/right for even "
                         f"kernels), torch padding={padding}: use padding='same' (stride 1)")
        if any(s != 1 for s in layer.strides):
            notes.append(f"{where}: Keras 'same' with stride {tuple(layer.strides)} pads asymmetrically; "
                         "torch Conv2d cannot: pad with F.pad first")
    return notes


def _check_coverage(match: LayerMatch, keras_model, torch_module) -> None:
    """Every trainable variable and parameter must be in a pair: nothing is left behind silently."""
    covered_keras = {id(w.keras_variable) for w in match.weights}
    covered_torch = {w.torch_name for w in match.weights}
    if match.problems:
        return
    for v in keras_model.trainable_variables:
        if id(v) not in covered_keras:
            match.problems.append(f"Keras variable {v.path} belongs to no supported layer")
    for name, _ in torch_module.named_parameters():
        if name not in covered_torch:
            match.problems.append(f"torch parameter {name} belongs to no supported module")


def keras_state(match: LayerMatch) -> dict[str, np.ndarray]:
    """The Keras model's weights in torch layout, keyed by torch name (parameters and buffers)."""
    return {w.torch_name: np.ascontiguousarray(w.to_torch(np.asarray(w.keras_variable.numpy())))
            for w in match.weights}


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
    """Copy every weight of ``torch_module`` into ``keras_model``: the inverse of :func:`keras_to_torch`."""
    match = match_layers(keras_model, torch_module, name_map, flatten_shapes)
    match.raise_if_problems("torch -> Keras")
    tensors = dict(torch_module.named_parameters())
    tensors.update(torch_module.named_buffers())
    for w in match.weights:
        value = tensors[w.torch_name].detach().cpu().numpy()
        w.keras_variable.assign(np.ascontiguousarray(w.to_keras(value)).astype(w.keras_variable.dtype))
    return match
