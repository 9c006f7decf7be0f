"""Stochastic layers on both sides of a pair: the same masks, or none, step for step.

Keras and torch draw their random numbers differently, so a model with ``Dropout`` trains
differently on the two sides unless both apply the *same* masks. :func:`parity.generic.step_parity`
takes care of it with ``stochastic=``:

* ``"share"`` (the default): during the Keras run every stochastic Keras layer draws its mask (or
  noise) from the harness's seeded NumPy generator (``stochastic_seed``) instead of Keras's, and
  applies it with Keras's own formula, in TensorFlow's op order (below); the draws are recorded
  per step and layer. During the torch run the matched torch module (``nn.Dropout``, ...)
  computes its output from the recorded draw of the same step, converted to the torch layout,
  with its *own* setting (``p``, ``stddev``: a twin with another rate still fails). Both sides
  thus see the same masks at every step, teacher-forced or free-running, and the layer-by-layer
  re-run of :mod:`parity.divergence` replays them.
* ``"off"``: the stochastic layers are the identity on both sides, in training too; everything
  else trains as usual (BatchNorm keeps its batch statistics, which ``training=False`` would
  not).
* ``"own"``: each side draws its own masks, as a comparison without this harness would: it
  fails at the first stochastic layer (the divergence report names it). For showing that the
  masks are the difference, not for checking a port.

The report says which was used (a note, in the JSON too).

**Formulas** (Keras 3 and Keras 2 with the TensorFlow backend compute exactly these; the torch
side the same with its module's setting):

================  ===================================================  ============================
Keras layer       output in training (``u`` uniform [0, 1), ``z``      torch module
                  standard normal, drawn by the harness)
================  ===================================================  ============================
Dropout           ``keep = u >= rate`` (u of the noise shape,          ``nn.Dropout``
                  broadcast); ``where(keep, x * (1 / (1 - rate)), 0)``
                  (``tf.nn.dropout``: the scale a constant of x's
                  dtype, multiplied first)
SpatialDropout1D  as Dropout, one ``u`` per (example, channel)         ``nn.Dropout1d`` on (N, C, L)
SpatialDropout2D                                                       ``nn.Dropout2d``
SpatialDropout3D                                                       ``nn.Dropout3d``
Dropout(noise_    as Dropout; a noise shape ``(batch, 1, ..., 1,        ``nn.Dropout{n}d``
shape=...)        channels)`` is a spatial dropout
GaussianNoise     ``x + (z * stddev + 0)``                             :class:`GaussianNoise`
GaussianDropout   ``x * (z * sqrt(rate / (1 - rate)) + 1)``            :class:`GaussianDropout`
AlphaDropout      not shared (``stochastic="off"`` only)              ``nn.AlphaDropout``
================  ===================================================  ============================

torch has no Gaussian noise modules: :class:`GaussianNoise` and :class:`GaussianDropout` here
are the twins (the identity in eval mode); a module of your own counts as one when its class
has that name and a ``stddev`` (resp. ``p``) attribute.

**Layouts.** A draw is kept in Keras's layout, at the layer's full input shape (a noise shape is
broadcast first), and converted to the shape the torch module receives: a 4-D or 5-D
channels-last tensor to channels-first; a 3-D one as it is, (batch, steps, features), or moved
to (batch, channels, length) for an ``nn.Dropout1d`` (a Keras ``SpatialDropout1D`` acts on
(batch, steps, channels): the torch twin transposes around its ``nn.Dropout1d``,
``drop(x.transpose(1, 2)).transpose(1, 2)``). A draw between a ``Flatten`` of a channels-last map
and the ``Dense`` after it is permuted from (h, w, c) to (c, h, w) order, as that Dense's
kernel is (``flatten_shapes`` of :mod:`parity.layers` applies to both).

**Pairing**, as for weighted layers: in order (Keras: the model's leaf layers; torch:
``named_modules()``), ``name_map={"keras_dropout": "torch.path"}`` first. A stochastic layer
left over on either side, a pair of different kinds (``SpatialDropout2D`` against
``nn.Dropout``), another Keras layer that draws random numbers (``RandomFlip``, ...) and a torch
module that calls ``torch.nn.functional.dropout`` (or ``dropout1d/2d/3d``,
``alpha_dropout``, ``feature_alpha_dropout``) itself in training are errors, one line each
(:class:`parity.errors.TransferError`), never a silent mismatch: the harness can share or turn
off only masks it can see. (A module that imported ``dropout`` from ``torch.nn.functional``
under another name, or draws with ``torch.rand`` by hand, escapes that check; the comparison
then fails at that layer.) In ``"share"`` mode each torch module must run as many times per
step as its Keras layer, on an input the draw fits.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from parity.errors import TransferError
from parity.layers import flatten_input_hwc, keras_kind, keras_layer_is, keras_leaves, pair_entries

STOCHASTIC_MODES = ("share", "off", "own")


# --- the torch twins torch lacks ---------------------------------------------------------------

class GaussianNoise(nn.Module):
    """The torch twin of ``keras.layers.GaussianNoise(stddev)``: ``x + N(0, stddev)`` in training,
    the identity in eval mode."""

    def __init__(self, stddev: float):
        super().__init__()
        self.stddev = float(stddev)

    def forward(self, x):
        if self.training and self.stddev > 0:
            return x + torch.randn_like(x) * self.stddev
        return x

    def extra_repr(self) -> str:
        return f"stddev={self.stddev}"


class GaussianDropout(nn.Module):
    """The torch twin of ``keras.layers.GaussianDropout(rate)``: ``x * N(1, p / (1 - p))`` (the
    variance) in training, the identity in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"GaussianDropout p={p}: expected 0 <= p < 1")
        self.p = float(p)

    def forward(self, x):
        if self.training and self.p > 0:
            return x * (torch.randn_like(x) * math.sqrt(self.p / (1.0 - self.p)) + 1.0)
        return x

    def extra_repr(self) -> str:
        return f"p={self.p}"


# --- the draws and both sides' formulas ---------------------------------------------------------

def _spatial_noise_shape(layer, shape: tuple, rank: int) -> tuple:
    """(batch, 1, ..., 1, C) channels-last, (batch, C, 1, ..., 1) channels-first."""
    ones = (1,) * rank
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return (shape[0], shape[1], *ones)
    return (shape[0], *ones, shape[-1])


def _noise_shape(layer, kind: str, shape: tuple) -> tuple:
    if kind.startswith("spatial_dropout"):
        return _spatial_noise_shape(layer, shape, int(kind[-2]))
    given = getattr(layer, "noise_shape", None)
    if given is None:
        return shape
    return tuple(int(s) if n is None else int(n) for n, s in zip(tuple(given), shape))


def _draw_mask(layer, kind: str, shape: tuple, dtype, rng: np.random.Generator) -> np.ndarray:
    keep = rng.random(_noise_shape(layer, kind, shape)) >= float(layer.rate)
    return np.broadcast_to(keep, shape).copy()


def _draw_normal(layer, kind: str, shape: tuple, dtype, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def keras_dropout(rate: float, x, keep: np.ndarray):
    import tensorflow as tf

    if rate <= 0:
        return x
    if rate >= 1:
        return tf.zeros_like(x)
    scale = tf.constant(1 / (1 - rate), dtype=x.dtype)
    return tf.where(tf.constant(keep), x * scale, tf.constant(0, dtype=x.dtype))


def _torch_dropout(p: float, x, keep):
    if p >= 1:
        return torch.zeros_like(x)
    scale = torch.tensor(1 / (1 - p), dtype=x.dtype, device=x.device)
    return torch.where(keep, x * scale, torch.zeros((), dtype=x.dtype, device=x.device))


def _keras_noise(stddev: float, x, z: np.ndarray):
    import tensorflow as tf

    if stddev <= 0:
        return x
    return x + (tf.constant(z, dtype=x.dtype) * tf.constant(stddev, dtype=x.dtype)
                + tf.constant(0.0, dtype=x.dtype))


def _torch_noise(stddev: float, x, z):
    return x + (z * torch.tensor(stddev, dtype=x.dtype, device=x.device)
                + torch.tensor(0.0, dtype=x.dtype, device=x.device))


def _gaussian_dropout_stddev(rate: float) -> float:
    return math.sqrt(rate / (1.0 - rate))


def _keras_gaussian_dropout(rate: float, x, z: np.ndarray):
    import tensorflow as tf

    if rate <= 0:
        return x
    return x * (tf.constant(z, dtype=x.dtype) * tf.constant(_gaussian_dropout_stddev(rate), dtype=x.dtype)
                + tf.constant(1.0, dtype=x.dtype))


def _torch_gaussian_dropout(p: float, x, z):
    if p <= 0:
        return x
    stddev = torch.tensor(_gaussian_dropout_stddev(p), dtype=x.dtype, device=x.device)
    return x * (z * stddev + torch.tensor(1.0, dtype=x.dtype, device=x.device))


# --- the kinds --------------------------------------------------------------------------------------

def _named(name: str, attribute: str) -> Callable[[nn.Module], bool]:
    return lambda module: type(module).__name__ == name and hasattr(module, attribute)


_SPATIAL_TORCH = {1: nn.Dropout1d, 2: nn.Dropout2d, 3: nn.Dropout3d}


@dataclass(frozen=True)
class StochasticKind:
    """One kind of stochastic layer: its Keras classes, the torch module that is its twin, the
    setting both have (``rate``/``p`` or ``stddev``), how a draw is made and applied on each
    side. ``shared=False``: its draws cannot be shared (``stochastic="off"`` only)."""

    name: str
    keras: tuple[str, ...]
    torch_label: str
    accepts: Callable[[nn.Module], bool]
    setting: str                      # the Keras attribute: "rate" or "stddev"
    torch_setting: str                # the torch attribute: "p" or "stddev"
    draw: Callable | None = None
    keras_apply: Callable | None = None
    torch_apply: Callable | None = None
    shared: bool = True
    why_not_shared: str = ""


def _spatial_kind(rank: int) -> StochasticKind:
    module = _SPATIAL_TORCH[rank]
    return StochasticKind(f"spatial_dropout{rank}d", (f"SpatialDropout{rank}D",), f"nn.{module.__name__}",
                          lambda m, module=module: isinstance(m, module), "rate", "p",
                          _draw_mask, keras_dropout, _torch_dropout)


_KINDS = (
    _spatial_kind(1), _spatial_kind(2), _spatial_kind(3),
    StochasticKind("dropout", ("Dropout",), "nn.Dropout", lambda m: isinstance(m, nn.Dropout), "rate", "p",
                   _draw_mask, keras_dropout, _torch_dropout),
    StochasticKind("gaussian_noise", ("GaussianNoise",), "parity.stochastic.GaussianNoise",
                   _named("GaussianNoise", "stddev"), "stddev", "stddev",
                   _draw_normal, _keras_noise, _torch_noise),
    StochasticKind("gaussian_dropout", ("GaussianDropout",), "parity.stochastic.GaussianDropout",
                   _named("GaussianDropout", "p"), "rate", "p",
                   _draw_normal, _keras_gaussian_dropout, _torch_gaussian_dropout),
    StochasticKind("alpha_dropout", ("AlphaDropout",), "nn.AlphaDropout",
                   lambda m: isinstance(m, (nn.AlphaDropout, nn.FeatureAlphaDropout)), "rate", "p",
                   shared=False, why_not_shared="its masks are not shared here (SELU's affine correction is "
                   "computed in another order by torch)"),
)
STOCHASTIC_KINDS: dict[str, StochasticKind] = {kind.name: kind for kind in _KINDS}


def stochastic_kind(layer) -> StochasticKind | None:
    """The kind of a Keras layer (Keras 3 or Keras 2), or None when it is not stochastic."""
    for kind in _KINDS:  # SpatialDropout* before Dropout: they subclass it
        if keras_layer_is(layer, *kind.keras):
            return kind
    return None


def is_torch_stochastic(module: nn.Module) -> bool:
    """A torch module the harness treats as stochastic (dropout modules, Gaussian noise twins)."""
    return isinstance(module, nn.modules.dropout._DropoutNd) or any(k.accepts(module) for k in _KINDS)


def _dropout_twin(layer, module) -> str | None:
    """Why a Keras ``Dropout`` (with its noise shape) and ``module`` are not twins, or None."""
    given = getattr(layer, "noise_shape", None)
    if given is None:
        return None if isinstance(module, nn.Dropout) else "nn.Dropout"
    given = tuple(given)
    middle = given[1:-1]
    if all(n is None for n in given):
        return None if isinstance(module, nn.Dropout) else "nn.Dropout"
    if given[0] is None and given[-1] != 1 and middle and all(n == 1 for n in middle):
        wanted = _SPATIAL_TORCH.get(len(middle))
        if wanted is None:
            return f"a spatial dropout of rank {len(middle)} (torch has none)"
        return None if isinstance(module, wanted) else f"nn.{wanted.__name__}"
    return (f"a dropout with noise_shape={given} (torch drops single values, nn.Dropout, or whole channels, "
            "nn.DropoutNd: give Keras one of those)")


def _setting(obj, name: str):
    value = getattr(obj, name, None)
    return None if value is None else float(value)


def _draws_random(layer) -> bool:
    """A Keras layer that draws random numbers in training (Keras 3: it holds a SeedGenerator;
    Keras 2: a BaseRandomLayer)."""
    import keras

    if any(isinstance(v, keras.random.SeedGenerator) for v in vars(layer).values()):
        return True
    legacy = sys.modules.get("tf_keras")
    if legacy is not None:
        base = getattr(getattr(legacy, "__internal__", None), "layers", None)
        base = getattr(base, "BaseRandomLayer", None)
        if base is not None and isinstance(layer, base):
            return True
    return False


# --- matching ----------------------------------------------------------------------------------------

@dataclass
class StochasticPair:
    """A Keras stochastic layer and its torch twin; ``hwc``: the (H, W, C) of the channels-last
    Flatten before it when its draws must be permuted into torch's (c, h, w) order."""

    keras_name: str
    keras_layer: object = field(repr=False)
    kind: StochasticKind = field(repr=False)
    torch_path: str = ""
    torch_module: nn.Module = field(default=None, repr=False)
    how: str = "order"
    hwc: tuple | None = None


@dataclass
class StochasticMatch:
    """The pairing of the stochastic layers: ``pairs``, ``problems`` (fatal, one line each),
    ``notes`` (settings that differ), and the ``mode`` (``"share"``, ``"off"``, ``"own"``)."""

    mode: str = "share"
    seed: int = 0
    pairs: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def raise_if_problems(self) -> None:
        if self.problems:
            count = len(self.problems)
            raise TransferError(f"cannot pair the stochastic layers: {count} problem{'s' * (count > 1)}: "
                                + "; ".join(self.problems))

    def summary(self) -> str | None:
        """The note saying how the stochastic layers were handled (None without any)."""
        if not self.pairs:
            return None
        listed = ", ".join(f"{p.keras_name} <-> {p.torch_path or '<root>'} ({type(p.torch_module).__name__})"
                           for p in self.pairs)
        how = {"share": f"masks shared (Keras's draws, seed {self.seed}, applied by the torch modules)",
               "off": "off (the identity on both sides, in training too)",
               "own": "each side draws its own masks (stochastic='own': no parity expected)"}[self.mode]
        return f"stochastic layers: {how}: {listed}"

    def by_keras_name(self) -> dict:
        return {p.keras_name: p for p in self.pairs}


def keras_stochastic_layers(model, dense_hwc: dict | None = None):
    """``([(name, layer, kind, hwc)], problems)`` for the stochastic leaf layers of a Keras model,
    in order; ``problems``: other layers that draw random numbers. ``hwc``: for a layer between
    a channels-last Flatten and the next weighted layer, the (H, W, C) its draws are permuted
    by: that layer's own (``dense_hwc``, from the weight matching, so ``flatten_shapes`` counts)
    when it is a Dense, else the Flatten's."""
    dense_hwc = dense_hwc or {}
    out, problems, pending, flatten = [], [], [], None
    for layer in keras_leaves(model):
        if keras_layer_is(layer, "Flatten"):
            shape = flatten_input_hwc(layer)
            flatten = shape if isinstance(shape, tuple) else None
            pending = []
            continue
        kind = stochastic_kind(layer)
        if kind is not None:
            entry = [layer.name, layer, kind, flatten]
            out.append(entry)
            if flatten is not None:
                pending.append(entry)
            continue
        weighted = keras_kind(layer)
        if weighted is None and _draws_random(layer):
            problems.append(f"Keras layer {layer.name!r} ({type(layer).__name__}) draws random numbers in "
                            "training; the harness shares only Dropout, SpatialDropout1D/2D/3D, "
                            "GaussianNoise and GaussianDropout: take it out of the model you check")
        if layer.weights:
            if weighted == "dense" and layer.name in dense_hwc:
                for entry in pending:
                    entry[3] = dense_hwc[layer.name]
            pending, flatten = [], None
    return [tuple(entry) for entry in out], problems


def torch_stochastic_modules(module: nn.Module):
    """``[(path, module)]`` for the stochastic torch modules, in registration order."""
    return [(path, sub) for path, sub in module.named_modules() if is_torch_stochastic(sub)]


def _describe(name, obj, side: str) -> str:
    if side == "keras":
        return f"Keras layer {name!r} ({type(obj).__name__})"
    return f"torch module {name or '<root>'!r} ({type(obj).__name__})"


def match_stochastic(keras_model, torch_module: nn.Module, name_map: dict | None = None, mode: str = "share",
                     seed: int = 0, dense_hwc: dict | None = None) -> StochasticMatch:
    """Pair the stochastic layers of a Keras model and a torch module (see the module docstring).

    ``name_map``: ``{keras_layer: torch_path}`` for stochastic layers; ``dense_hwc``: ``{Dense
    name: (H, W, C) or None}`` of the weight matching (``LayerMatch``), for draws after a Flatten.
    """
    if mode not in STOCHASTIC_MODES:
        raise TransferError(f"stochastic={mode!r}: expected one of {', '.join(STOCHASTIC_MODES)}")
    match = StochasticMatch(mode=mode, seed=seed)
    keras_layers, match.problems = keras_stochastic_layers(keras_model, dense_hwc)
    torch_modules = torch_stochastic_modules(torch_module)
    pairs, rest_keras, rest_torch, unknown_keras, unknown_torch = pair_entries(keras_layers, torch_modules,
                                                                               dict(name_map or {}))
    for keras_name in unknown_keras:
        layers = ", ".join(e[0] for e in keras_layers) or "none"
        match.problems.append(f"name_map names Keras layer {keras_name!r}, which is not a stochastic layer "
                              f"of the model (stochastic layers: {layers})")
    for torch_path in unknown_torch:
        modules = ", ".join(e[0] for e in torch_modules) or "none"
        match.problems.append(f"name_map names torch module {torch_path!r}, which is not a stochastic module "
                              f"(stochastic modules: {modules})")
    for name, layer, kind, _ in rest_keras:
        match.problems.append(f"{_describe(name, layer, 'keras')} has no torch counterpart: the torch "
                              f"module needs a {kind.torch_label} module (registered in __init__, in the "
                              "same order) so that the harness can give it Keras's masks (or pass "
                              "stochastic='off')")
    for path, module in rest_torch:
        match.problems.append(f"{_describe(path, module, 'torch')} has no Keras counterpart (left over): "
                              "a stochastic module the Keras model does not have")
    for (name, layer, kind, hwc), (path, module), how in pairs:
        keras_side, torch_side = _describe(name, layer, "keras"), _describe(path, module, "torch")
        wanted = _dropout_twin(layer, module) if kind.name == "dropout" else (
            None if kind.accepts(module) else kind.torch_label)
        if wanted is not None:
            hint = "; the order differs? pass name_map={keras_layer: torch_path}" if how == "order" else ""
            match.problems.append(f"{keras_side} is paired (by {how}) with {torch_side}; its twin is {wanted}"
                                  f"{hint}")
            continue
        if mode == "share" and not kind.shared:
            match.problems.append(f"{keras_side}: {kind.why_not_shared}: pass stochastic='off'")
            continue
        keras_value, torch_value = _setting(layer, kind.setting), _setting(module, kind.torch_setting)
        if keras_value is not None and torch_value is not None and abs(keras_value - torch_value) > 1e-12:
            match.notes.append(f"{name} <-> {path}: {kind.setting} differs: Keras {keras_value:g}, torch "
                               f"{kind.torch_setting}={torch_value:g}")
        match.pairs.append(StochasticPair(name, layer, kind, path, module, how, hwc))
    return match


# --- layouts ----------------------------------------------------------------------------------------

def to_torch_layout(value, shape, hwc: tuple | None = None) -> np.ndarray | None:
    """A Keras-layout array as the torch side holds it, at ``shape``: after a channels-last
    Flatten (``hwc``) permuted to (c, h, w) order; a 4-D/5-D array channels-first (else as it
    is); a 3-D one as it is (else channels-first); None when no layout gives ``shape``."""
    value = np.asarray(value)
    shape = tuple(int(s) for s in shape)
    candidates = []
    if hwc is not None and value.ndim == 2 and value.shape[1] == int(np.prod(hwc)):
        H, W, C = hwc
        candidates.append(value.reshape(-1, H, W, C).transpose(0, 3, 1, 2).reshape(value.shape[0], -1))
    moved = [np.moveaxis(value, -1, 1)] if value.ndim >= 3 else []
    candidates += [value, *moved] if value.ndim <= 3 else [*moved, value]
    for candidate in candidates:
        if candidate.shape == shape:
            return np.ascontiguousarray(candidate)
    return None


# --- both sides at run time ------------------------------------------------------------------------

def _training(args, kwargs) -> bool:
    training = kwargs.get("training", args[0] if args else None)
    return bool(training) if training is not None else False


class KerasStochastic:
    """Context manager for the Keras side: wraps each paired layer's ``call`` (an instance
    attribute, removed on exit). In ``"share"`` mode it draws, applies and records (``draws[step]
    [layer] = [array per call]``), or replays a recorded step (:meth:`begin` with
    ``replay=True``); in ``"off"`` mode the layers are the identity; ``"own"`` changes nothing."""

    def __init__(self, match: StochasticMatch):
        self.match, self.rng = match, np.random.default_rng(match.seed)
        self.draws: dict[int, dict[str, list]] = {}
        self.step, self.replay, self.used = 0, False, {}
        self._installed = []

    def begin(self, step: int, replay: bool = False) -> None:
        self.step, self.replay, self.used = step, replay, {}
        if not replay:
            self.draws[step] = {}

    def _call(self, pair: StochasticPair, original):
        def call(inputs, *args, **kwargs):
            if self.match.mode == "off" or not _training(args, kwargs):
                return inputs
            recorded = self.draws.setdefault(self.step, {}).setdefault(pair.keras_name, [])
            if self.replay:
                index = self.used.get(pair.keras_name, 0)
                self.used[pair.keras_name] = index + 1
                value = recorded[index]
            else:
                shape = tuple(int(s) for s in inputs.shape)
                value = pair.kind.draw(pair.keras_layer, pair.kind.name, shape,
                                       np.dtype(inputs.dtype.as_numpy_dtype), self.rng)
                recorded.append(value)
            return pair.kind.keras_apply(float(getattr(pair.keras_layer, pair.kind.setting)), inputs, value)

        return call

    def __enter__(self):
        if self.match.mode != "own":
            for pair in self.match.pairs:
                layer = pair.keras_layer
                previous = layer.__dict__.get("call")
                layer.__dict__["call"] = self._call(pair, layer.call)
                self._installed.append((layer, previous))
        return self

    def __exit__(self, *exc):
        while self._installed:
            layer, previous = self._installed.pop()
            if previous is None:
                layer.__dict__.pop("call", None)
            else:
                layer.__dict__["call"] = previous
        return False


_FUNCTIONAL = {"dropout": True, "dropout1d": True, "dropout2d": True, "dropout3d": True,
               "alpha_dropout": False, "feature_alpha_dropout": False}  # name: default of training=


class TorchStochastic:
    """Context manager for the torch side: in ``"share"`` mode each paired module's ``forward``
    (an instance attribute, removed on exit) applies the Keras draw of the current step
    (:meth:`begin`), converted to its input's layout, with the module's own setting; in
    ``"off"`` mode it is the identity. In both, ``torch.nn.functional``'s dropouts refuse to run
    in training (a module drawing masks the harness cannot see). ``"own"`` changes nothing."""

    def __init__(self, match: StochasticMatch, module: nn.Module, draws: dict):
        self.match, self.module, self.draws = match, module, draws
        self.step, self.used = 0, {}
        self._installed, self._patched = [], []

    def begin(self, step: int) -> None:
        self.check()
        self.step, self.used = step, {}

    def check(self) -> None:
        """Every Keras draw of the current step was used by its torch module (``"share"``)."""
        if self.match.mode != "share" or not self.step:
            return
        for pair in self.match.pairs:
            drawn = len(self.draws.get(self.step, {}).get(pair.keras_name, []))
            used = self.used.get(pair.keras_name, 0)
            if used != drawn:
                raise TransferError(f"step {self.step}: Keras layer {pair.keras_name!r} drew {drawn} mask"
                                    f"{'s' * (drawn != 1)}, torch module {pair.torch_path!r} ran {used} time"
                                    f"{'s' * (used != 1)} in training: the torch module must call its "
                                    f"{type(pair.torch_module).__name__} where Keras calls the layer")

    def _forward(self, pair: StochasticPair):
        module = pair.torch_module

        def forward(x, *args, **kwargs):
            if self.match.mode == "off" or not module.training:
                return x
            recorded = self.draws.get(self.step, {}).get(pair.keras_name, [])
            index = self.used.get(pair.keras_name, 0)
            self.used[pair.keras_name] = index + 1
            if index >= len(recorded):
                raise TransferError(f"step {self.step}: torch module {pair.torch_path!r} ran {index + 1} "
                                    f"times in training, Keras layer {pair.keras_name!r} {len(recorded)}: "
                                    f"the torch module must call its {type(module).__name__} where Keras "
                                    "calls the layer")
            value = to_torch_layout(recorded[index], tuple(x.shape), pair.hwc)
            if value is None:
                raise TransferError(f"step {self.step}: Keras layer {pair.keras_name!r} drew for an input of "
                                    f"shape {recorded[index].shape} (Keras layout), torch module "
                                    f"{pair.torch_path!r} gets {tuple(x.shape)}: they sit in different "
                                    "places of the models (or the torch layout is neither channels-first nor "
                                    "Keras's)")
            draw = torch.as_tensor(value, device=x.device)
            if draw.is_floating_point():
                draw = draw.to(x.dtype)
            return pair.kind.torch_apply(float(getattr(module, pair.kind.torch_setting)), x, draw)

        return forward

    def _guard(self, name: str, original, default_training: bool, paths: dict):
        def guarded(input, *args, **kwargs):
            p = kwargs.get("p", args[0] if args else 0.5)
            training = kwargs.get("training", args[1] if len(args) > 1 else default_training)
            if training and p > 0:
                where = "the torch module"
                frame = sys._getframe(1)
                while frame is not None:
                    owner = frame.f_locals.get("self")
                    if owner is not None and id(owner) in paths:
                        path = paths[id(owner)]
                        where = f"torch module {path or '<root>'!r} ({type(owner).__name__})"
                        break
                    frame = frame.f_back
                raise TransferError(f"{where} calls torch.nn.functional.{name}(p={p}) in training: "
                                    "the harness can share (or turn off) only the masks of dropout modules "
                                    "it pairs with Keras's layers: register an nn.Dropout (nn.Dropout2d, "
                                    "...) in __init__ and call it")
            return original(input, *args, **kwargs)

        return guarded

    def __enter__(self):
        if self.match.mode == "own":
            return self
        for pair in self.match.pairs:
            pair.torch_module.forward = self._forward(pair)
            self._installed.append(pair.torch_module)
        functional = torch.nn.functional
        paths = {id(m): p for p, m in self.module.named_modules()}
        for name, default_training in _FUNCTIONAL.items():
            original = getattr(functional, name)
            setattr(functional, name, self._guard(name, original, default_training, paths))
            self._patched.append((name, original))
        return self

    def __exit__(self, kind, value, traceback):
        while self._installed:
            del self._installed.pop().forward
        functional = torch.nn.functional
        while self._patched:
            name, original = self._patched.pop()
            setattr(functional, name, original)
        if kind is None:
            self.check()
        return False
