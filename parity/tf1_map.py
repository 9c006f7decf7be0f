"""TF1 variable names and layouts -> torch ``state_dict`` keys and layouts, by an explicit name map.

A **name map** is a dict. Each key says which TF1 variables a rule applies to:

* an exact variable name, as ``Saver`` writes it: ``"conv1/Variable"``, ``"dense/kernel"``, ``"W1"``;
* a glob, with ``*`` (any characters but ``/``) and ``?`` (one of them): ``"block*/conv/kernel"``;
* a compiled regular expression (``re.compile(r"layer_(\\d+)/weights")``), matched in full.

Each value says what the variable becomes: a torch key (``"conv1.weight"``), or a
:class:`Target` made by :func:`same`, :func:`dense`, :func:`conv2d`, :func:`conv1d`,
:func:`lstm_kernel` or :func:`lstm_bias`. Keys may use the pattern's groups: ``{1}``, ``{2}``...
(a glob's wildcards, in order) or ``{name}`` (a named regex group): ``{"block*/conv/kernel":
"blocks.{1}.conv.weight"}``. Exact names win over patterns; patterns are tried in the map's order.

**Layouts** (the ``kind`` of a :class:`Target`):

===========  ====================================  ============================================
kind         TF1 variable                          torch tensor(s)
===========  ====================================  ============================================
auto         (a plain string value) the one of the kinds below whose shapes fit; refused when
             none or several fit (a square matrix: say :func:`dense` or :func:`same`)
same         any shape                             the same array; a reshape where only
                                                   size-1 axes differ (``b1`` (25, 1) -> (25,))
dense        ``(in, out)``, used as ``x @ W``      ``nn.Linear.weight`` ``(out, in)``: ``W.T``
             (``tf.layers.dense``, slim, most
             ``get_variable`` code)
dense, with  ``(H*W*C, out)`` after a reshape of   ``(out, C*H*W)``: rows permuted from
flatten_hwc  an NHWC map                           (h, w, c) to (c, h, w) order, then ``.T``
conv2d       ``HWIO`` ``(kh, kw, in, out)``        ``OIHW``: ``transpose(3, 2, 0, 1)``
conv1d       ``(k, in, out)``                      ``(out, in, k)``
lstm_kernel  ``rnn_cell`` ``LSTMCell``/            ``weight_ih_l0`` ``(4u, in)`` and
             ``BasicLSTMCell`` kernel ``(in + u,   ``weight_hh_l0`` ``(4u, u)``: rows ``[:in]``
             4u)``, gates ``i, j, f, o``           and ``[in:]``, transposed, gate blocks
                                                   reordered to torch's ``i, f, g(=j), o``
lstm_bias    the cell's bias ``(4u,)``, gates      ``bias_ih_l0`` = the bias, reordered, with
             ``i, j, f, o``; the cell adds         ``forget_bias`` added to the ``f`` block;
             ``forget_bias`` (default 1.0)         ``bias_hh_l0`` = 0, and it must be frozen
             to ``f`` inside                       (``requires_grad_(False)``): one bias in TF
===========  ====================================  ============================================

Moving statistics of ``tf.layers.batch_normalization`` (``moving_mean``, ``moving_variance``) are
``same`` to ``running_mean``, ``running_var``; ``gamma``/``beta`` to ``weight``/``bias``.

Parameters and optimizer slots convert alike except for the one **affine** conversion,
``lstm_bias``: its ``forget_bias`` shift applies to the parameter only; gradients and slots
(``m``, ``v``, accumulators) convert linearly (:meth:`Pair.to_torch` ``offset=False``).
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import re
from dataclasses import dataclass, field

import numpy as np

from parity.errors import TransferError

KINDS = ("auto", "same", "dense", "conv2d", "conv1d", "lstm_kernel", "lstm_bias")
# torch buffers that have no TF1 counterpart (BatchNorm's step counter)
UNMAPPED_BUFFERS = ("num_batches_tracked",)
TF_TO_TORCH_GATES = (0, 2, 1, 3)  # TF1 cells i, j, f, o -> torch i, f, g, o
TORCH_TO_TF_GATES = (0, 2, 1, 3)  # the same permutation is its own inverse


@dataclass(frozen=True)
class Target:
    """What one TF1 variable becomes: torch ``keys`` (templates), a layout ``kind``, its options."""

    keys: tuple
    kind: str = "auto"
    flatten_hwc: tuple | None = None
    forget_bias: float = 1.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise TransferError(f"name map: unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        wanted = 2 if self.kind in ("lstm_kernel", "lstm_bias") else 1
        if len(self.keys) != wanted or not all(isinstance(k, str) and k for k in self.keys):
            raise TransferError(f"name map: kind {self.kind} takes {wanted} torch key(s), got {self.keys!r}")


def same(key: str) -> Target:
    """The array as it is (or reshaped where only size-1 axes differ)."""
    return Target((key,), "same")


def dense(key: str, flatten_hwc: tuple | None = None) -> Target:
    """A matmul kernel ``(in, out)`` -> ``nn.Linear.weight`` ``(out, in)``. ``flatten_hwc=(H, W, C)``
    for the first dense layer after a reshape of an NHWC map to ``(m, H*W*C)`` when the torch
    module flattens NCHW."""
    return Target((key,), "dense", tuple(flatten_hwc) if flatten_hwc is not None else None)


def conv2d(key: str) -> Target:
    """A conv kernel HWIO -> OIHW."""
    return Target((key,), "conv2d")


def conv1d(key: str) -> Target:
    """A 1-D conv kernel ``(k, in, out)`` -> ``(out, in, k)``."""
    return Target((key,), "conv1d")


def lstm_kernel(weight_ih: str, weight_hh: str) -> Target:
    """A ``tf.nn.rnn_cell`` LSTM kernel ``(in + units, 4 units)`` -> ``nn.LSTM``'s two weights."""
    return Target((weight_ih, weight_hh), "lstm_kernel")


def lstm_bias(bias_ih: str, bias_hh: str, forget_bias: float = 1.0) -> Target:
    """A ``tf.nn.rnn_cell`` LSTM bias -> ``bias_ih`` (with ``forget_bias`` added to the forget gate)
    and ``bias_hh`` (zero, frozen). ``forget_bias``: the cell's (``BasicLSTMCell``/``LSTMCell``
    default 1.0; a cell restored from a checkpoint keeps adding it)."""
    return Target((bias_ih, bias_hh), "lstm_bias", forget_bias=float(forget_bias))


# --- layouts -------------------------------------------------------------------------------------

def _gates(value: np.ndarray, order, axis: int = 0) -> np.ndarray:
    blocks = np.split(value, 4, axis=axis)
    return np.concatenate([blocks[i] for i in order], axis=axis)


def _flat_rows_to_torch(kernel: np.ndarray, hwc) -> np.ndarray:
    h, w, c = hwc
    out = kernel.shape[1]
    return kernel.reshape(h, w, c, out).transpose(2, 0, 1, 3).reshape(h * w * c, out)


def _flat_rows_to_tf(rows: np.ndarray, hwc) -> np.ndarray:
    h, w, c = hwc
    out = rows.shape[1]
    return rows.reshape(c, h, w, out).transpose(1, 2, 0, 3).reshape(h * w * c, out)


def torch_shapes_for(kind: str, tf_shape: tuple, target: Target, torch_shapes: tuple) -> tuple | None:
    """The torch shapes ``kind`` turns ``tf_shape`` into (None where it cannot apply)."""
    n = len(tf_shape)
    if kind == "same":
        if len(torch_shapes) != 1:
            return None
        want = torch_shapes[0]
        if tuple(tf_shape) == want:
            return (want,)
        squeeze = tuple(d for d in tf_shape if d != 1) == tuple(d for d in want if d != 1)
        return (want,) if squeeze and math.prod(tf_shape) == math.prod(want) else (tuple(tf_shape),)
    if kind == "dense":
        if n != 2:
            return None
        if target.flatten_hwc is not None and math.prod(target.flatten_hwc) != tf_shape[0]:
            return None
        return ((tf_shape[1], tf_shape[0]),)
    if kind == "conv2d":
        return ((tf_shape[3], tf_shape[2], tf_shape[0], tf_shape[1]),) if n == 4 else None
    if kind == "conv1d":
        return ((tf_shape[2], tf_shape[1], tf_shape[0]),) if n == 3 else None
    if kind == "lstm_kernel":
        if n != 2 or tf_shape[1] % 4 or len(torch_shapes[0]) != 2:
            return None
        units = tf_shape[1] // 4
        inputs = tf_shape[0] - units
        return ((4 * units, inputs), (4 * units, units)) if inputs > 0 else None
    if kind == "lstm_bias":
        return ((tf_shape[0],), (tf_shape[0],)) if n == 1 and tf_shape[0] % 4 == 0 else None
    return None


def _to_torch(kind, target, value, torch_shapes):
    if kind == "same":
        return (value.reshape(torch_shapes[0]),)
    if kind == "dense":
        if target.flatten_hwc is not None:
            value = _flat_rows_to_torch(value, target.flatten_hwc)
        return (value.T,)
    if kind == "conv2d":
        return (value.transpose(3, 2, 0, 1),)
    if kind == "conv1d":
        return (value.transpose(2, 1, 0),)
    if kind == "lstm_kernel":
        inputs = torch_shapes[0][1]
        return (_gates(value[:inputs].T, TF_TO_TORCH_GATES), _gates(value[inputs:].T, TF_TO_TORCH_GATES))
    if kind == "lstm_bias":
        return (_gates(value, TF_TO_TORCH_GATES), np.zeros_like(value))
    raise AssertionError(kind)


def _to_tf(kind, target, values, tf_shape):
    if kind == "same":
        return values[0].reshape(tf_shape)
    if kind == "dense":
        rows = values[0].T
        return _flat_rows_to_tf(rows, target.flatten_hwc) if target.flatten_hwc is not None else rows
    if kind == "conv2d":
        return values[0].transpose(2, 3, 1, 0)
    if kind == "conv1d":
        return values[0].transpose(2, 1, 0)
    if kind == "lstm_kernel":
        return np.concatenate([_gates(values[0], TORCH_TO_TF_GATES).T,
                               _gates(values[1], TORCH_TO_TF_GATES).T])
    if kind == "lstm_bias":
        return _gates(values[0] + values[1], TORCH_TO_TF_GATES)
    raise AssertionError(kind)


def _forget_offset(target: Target, size: int, dtype) -> np.ndarray:
    """``forget_bias`` on the forget gate's block, in torch's gate order (i, f, g, o)."""
    offset = np.zeros(size, dtype=dtype)
    units = size // 4
    offset[units:2 * units] = target.forget_bias
    return offset


@dataclass
class Pair:
    """One TF1 variable and the torch tensor(s) it becomes."""

    tf_name: str
    tf_shape: tuple
    torch_keys: tuple
    torch_shapes: tuple
    kind: str
    target: Target

    def to_torch(self, value, offset: bool = True) -> dict[str, np.ndarray]:
        """TF value -> ``{torch key: array}``; ``offset=False`` for gradients and slots (linear part)."""
        value = np.asarray(value)
        arrays = _to_torch(self.kind, self.target, value, self.torch_shapes)
        out = {key: np.ascontiguousarray(a) for key, a in zip(self.torch_keys, arrays)}
        if offset and self.kind == "lstm_bias":
            key = self.torch_keys[0]
            out[key] = out[key] + _forget_offset(self.target, value.shape[0], value.dtype)
        return out

    def to_tf(self, values: dict, offset: bool = True) -> np.ndarray:
        """``{torch key: array}`` -> the TF value (the inverse of :meth:`to_torch`)."""
        arrays = [np.asarray(values[key]) for key in self.torch_keys]
        if offset and self.kind == "lstm_bias":
            arrays[0] = arrays[0] - _forget_offset(self.target, arrays[0].shape[0], arrays[0].dtype)
        return np.ascontiguousarray(_to_tf(self.kind, self.target, arrays, self.tf_shape))

    @property
    def frozen_keys(self) -> tuple:
        """torch keys that must not be trained (an LSTM's ``bias_hh``: TF1's cell has one bias)."""
        return (self.torch_keys[1],) if self.kind == "lstm_bias" else ()


@dataclass
class Mapping:
    """The pairs a name map gives, and every problem found (names, shapes, dtypes)."""

    pairs: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    ignored: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def pair(self, tf_name: str) -> Pair:
        return next(p for p in self.pairs if p.tf_name == tf_name)

    def by_torch_key(self) -> dict[str, Pair]:
        return {key: p for p in self.pairs for key in p.torch_keys}

    def raise_if_problems(self, where: str) -> None:
        if self.problems:
            count = len(self.problems)
            raise TransferError(f"{where}: {count} problem{'s' if count > 1 else ''}: "
                                + "; ".join(self.problems))

    def to_torch(self, values: dict, offset: bool = True) -> dict[str, np.ndarray]:
        """``{tf name: array}`` (the pairs' TF names) -> ``{torch key: array}``."""
        out = {}
        for p in self.pairs:
            if p.tf_name in values:
                out.update(p.to_torch(values[p.tf_name], offset))
        return out

    def to_tf(self, values: dict, offset: bool = True) -> dict[str, np.ndarray]:
        """``{torch key: array}`` -> ``{tf name: array}`` for the pairs whose torch keys are all given."""
        return {p.tf_name: p.to_tf(values, offset) for p in self.pairs
                if all(key in values for key in p.torch_keys)}


# --- resolving a name map ------------------------------------------------------------------------

def _glob_regex(pattern: str) -> re.Pattern:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append("([^/]*)")
        elif char == "?":
            parts.append("([^/])")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts))


def _is_glob(key) -> bool:
    return isinstance(key, str) and any(c in key for c in "*?")


def _as_target(value, where: str) -> Target:
    if isinstance(value, Target):
        return value
    if isinstance(value, str) and value:
        return Target((value,), "auto")
    raise TransferError(f"name map: the value for {where!r} must be a torch key or a parity.tf1 target "
                        f"(same, dense, conv2d, ...), got {value!r}")


_TEMPLATE = re.compile(r"\{(\w+)\}")


def _expand(key: str, match: re.Match | None) -> str:
    if match is None:
        return key

    def group(m):
        name = m.group(1)
        try:
            value = match.group(int(name)) if name.isdigit() else match.group(name)
        except IndexError:
            raise TransferError(f"name map: template {key!r} names group {{{name}}}, which the pattern "
                                f"{match.re.pattern!r} does not have") from None
        return value or ""

    return _TEMPLATE.sub(group, key)


def _rules(name_map: dict) -> tuple[dict, list]:
    if not isinstance(name_map, dict) or not name_map:
        raise TransferError(f"name map must be a non-empty dict of TF1 names (or patterns) -> torch keys, "
                            f"got {type(name_map).__name__}")
    exact, patterns = {}, []
    for key, value in name_map.items():
        if isinstance(key, re.Pattern):
            patterns.append((key, key, _as_target(value, key.pattern)))
        elif _is_glob(key):
            patterns.append((key, _glob_regex(key), _as_target(value, key)))
        elif isinstance(key, str) and key:
            exact[key.removesuffix(":0")] = _as_target(value, key)
        else:
            raise TransferError(f"name map keys must be TF1 variable names, globs or re.compile(...) "
                                f"patterns, got {key!r}")
    return exact, patterns


def _close(name: str, candidates) -> str:
    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {found[0]!r}?)" if found else ""


def _shape_hint(tf_shape: tuple, want: tuple) -> str:
    if len(want) == 4 and len(tf_shape) == 4 and (tf_shape[3], tf_shape[2], tf_shape[0], tf_shape[1]) == want:
        return " (an HWIO conv kernel: use conv2d(...))"
    if len(want) == 2 and tuple(tf_shape) == want[::-1]:
        return " (an (in, out) kernel: use dense(...))"
    if len(want) == 4 and len(tf_shape) == 4 and tuple(tf_shape) != want:
        return " (conv kernels: TF1 HWIO (kh, kw, in, out), torch OIHW (out, in, kh, kw))"
    return ""


def _auto_kind(tf_shape: tuple, torch_shapes: tuple) -> tuple[str | None, list]:
    fits = []
    for kind in ("same", "dense", "conv2d", "conv1d"):
        got = torch_shapes_for(kind, tf_shape, Target(("x",), kind), torch_shapes)
        if got is not None and got == torch_shapes:
            fits.append(kind)
    return (fits[0] if len(fits) == 1 else None), fits


def resolve(name_map: dict, tf_vars: dict, torch_tensors: dict, *, optimizer_state=(), ignore=(),
            ignore_torch=(), cast: bool = False) -> Mapping:
    """Pair ``tf_vars`` (``{name: (shape, dtype name)}``) with ``torch_tensors`` (``{key: (shape,
    dtype name)}``) by ``name_map``, collecting every problem instead of stopping at the first.

    ``optimizer_state``: TF names that are the optimizer's (slots, beta powers, ``global_step``),
    left out. ``ignore`` / ``ignore_torch``: globs of names with no twin on purpose. ``cast``:
    allow a dtype change (float32 checkpoint -> float64 module).
    """
    exact, patterns = _rules(name_map)
    mapping = Mapping()
    used_exact, used_patterns, produced = set(), set(), {}
    no_twin, dtypes = [], {}
    for name in sorted(tf_vars):
        shape, dtype = tf_vars[name]
        shape = tuple(shape)
        if name in optimizer_state:
            continue
        target, match = exact.get(name), None
        if target is not None:
            used_exact.add(name)
        else:
            for _key, regex, candidate in patterns:
                match = regex.fullmatch(name)
                if match:
                    target = candidate
                    used_patterns.add(id(regex))
                    break
        if target is None:
            if any(fnmatch.fnmatchcase(name, g) for g in ignore):
                mapping.ignored.append(name)
            else:
                no_twin.append(f"{name} {shape}")
            continue
        keys = tuple(_expand(k, match) for k in target.keys)
        missing = [k for k in keys if k not in torch_tensors]
        if missing:
            for key in missing:
                mapping.problems.append(f"{name} -> {key!r}: the torch module has no such tensor"
                                        + _close(key, torch_tensors))
            continue
        for key in keys:
            produced.setdefault(key, []).append(name)
        torch_shapes = tuple(tuple(torch_tensors[k][0]) for k in keys)
        kind = target.kind
        if kind == "auto":
            kind, fits = _auto_kind(shape, torch_shapes)
            if kind is None:
                if fits:
                    mapping.problems.append(
                        f"{name} {shape} -> {keys[0]} {torch_shapes[0]}: the layout is ambiguous (fits "
                        f"{' and '.join(fits)}): say dense(...) for an (in, out) kernel used as x @ W, "
                        "same(...) for one used as W @ x")
                else:
                    mapping.problems.append(f"{name} has shape {shape}, {keys[0]} {torch_shapes[0]}"
                                            + _shape_hint(shape, torch_shapes[0]))
                continue
        got = torch_shapes_for(kind, shape, target, torch_shapes)
        if got != torch_shapes:
            mapping.problems.append(f"{name} {shape} as {kind} gives {got if got else 'nothing'}, torch "
                                    f"{', '.join(keys)} {'/'.join(map(str, torch_shapes))}"
                                    + _shape_hint(shape, torch_shapes[0]))
            continue
        for key in keys:
            torch_dtype = torch_tensors[key][1]
            if dtype != torch_dtype and not cast:
                dtypes.setdefault((dtype, torch_dtype), []).append(f"{name} -> {key}")
        mapping.pairs.append(Pair(name, shape, keys, torch_shapes, kind, target))
    for (dtype, torch_dtype), names in dtypes.items():
        mapping.problems.append(f"{', '.join(names)}: TF1 {dtype}, torch {torch_dtype}: build the module in "
                                f"{dtype} (module.to(torch.{dtype})), or pass cast=True")
    if no_twin:
        mapping.problems.append(f"TF1 variables with no twin in the name map: {', '.join(no_twin)}")
    unused = [k for k in exact if k not in used_exact]
    for key in unused:
        where = "optimizer state, not a model variable" if key in optimizer_state else \
            "no such variable" + _close(key, tf_vars)
        mapping.problems.append(f"name map names {key!r}: {where}")
    for key, regex, _ in patterns:
        if id(regex) not in used_patterns:
            mapping.problems.append(f"name map pattern {key if isinstance(key, str) else key.pattern!r} "
                                    "matches no variable")
    twice = {k: v for k, v in produced.items() if len(v) > 1}
    for key, names in twice.items():
        mapping.problems.append(f"torch {key} is the twin of several variables: {', '.join(names)}")
    left = [k for k in torch_tensors if k not in produced
            and k.rsplit(".", 1)[-1] not in UNMAPPED_BUFFERS
            and not any(fnmatch.fnmatchcase(k, g) for g in ignore_torch)]
    if left:
        mapping.problems.append(f"torch tensors with no TF1 variable: {', '.join(left)}")
    return mapping


def torch_tensors_of(module) -> dict:
    """``{key: (shape, dtype name)}`` of a module's parameters and buffers (its ``state_dict``)."""
    out = {}
    for key, value in module.state_dict(keep_vars=True).items():
        out[key] = (tuple(value.shape), str(value.dtype).removeprefix("torch."))
    return out
