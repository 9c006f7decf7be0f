"""``tf.train.Saver`` checkpoints <-> torch modules (and their optimizers), through a name map.

:func:`load_checkpoint_into` reads a TF1 checkpoint (``tf.train.load_checkpoint``), pairs its
variables with the module's ``state_dict`` keys by a name map (:mod:`parity.tf1_map`), converts
each layout, and copies; with ``optimizer=`` (a twin from :mod:`parity.tf1_optim`) it also loads
the optimizer's slots (``<var>/Adam``, ``<var>/Adam_1``, ``<var>/Momentum``, ...), Adam's
``beta1_power``/``beta2_power`` and ``global_step``, so that training continues in torch where
TF1 stopped. Everything is checked first; a problem anywhere refuses the whole load, in one line
(:class:`parity.errors.TransferError`), before anything is copied.

:func:`save_checkpoint_from` is the reverse: a module (and optimizer) -> a checkpoint TF1's
``Saver.restore`` reads into the original graph.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from parity.tf1_map import Mapping, Pair, Target, resolve, torch_shapes_for, torch_tensors_of
from parity.tf1_optim import global_step_of, set_global_step, slot_order, twin_info
from signs.errors import InputError
from torch_port.optim import TFAdam

# slot variables of TF1's optimizers are named <variable>/<optimizer name>[_<n>]
OPTIMIZER_NAMES = ("Adam", "Momentum", "RMSProp", "Adagrad", "Adadelta", "Ftrl", "ProximalAdagrad",
                   "ProximalGradientDescent", "AdagradDA")
# non-slot state: Adam's beta powers (under the name scope minimize() ran in) and the global step
NON_SLOT = re.compile(r"(?:.*/)?(beta[12]_power|global_step)(_\d+)?")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def open_checkpoint(path):
    """``tf.train.load_checkpoint(path)`` (a prefix such as ``ckpt/model-100``, or a directory with a
    ``checkpoint`` file), refusing in one line what is not there or not a checkpoint."""
    import tensorflow as tf

    path = os.fspath(path)
    if not Path(path).is_dir() and not Path(path + ".index").exists() and not Path(path).exists():
        raise InputError(f"checkpoint {path}: not found (no {path}.index, and no directory of that name)")
    try:
        return tf.train.load_checkpoint(path)
    except Exception as error:  # NotFoundError, DataLossError, ValueError ...
        message = _one_line(error).split(" [")[0][:200]
        raise InputError(f"checkpoint {path}: not a TF checkpoint ({type(error).__name__}: "
                         f"{message})") from None


def checkpoint_variables(path) -> dict[str, tuple]:
    """``{name: (shape, dtype name)}`` of every variable in a checkpoint."""
    reader = open_checkpoint(path)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    return {name: (tuple(shapes[name]), dtypes[name].name) for name in shapes}


def optimizer_state_names(names, tf_name: str | None = None) -> set[str]:
    """The names that are an optimizer's state: ``<var>/<Optimizer>[_n]`` slots of another variable
    in ``names``, ``beta1_power``/``beta2_power`` and ``global_step``."""
    names = set(names)
    prefixes = "|".join(re.escape(n) for n in {*OPTIMIZER_NAMES, *([tf_name] if tf_name else [])})
    slot = re.compile(rf"(.+)/(?:{prefixes})(?:_\d+)?")
    state = set()
    for name in names:
        m = slot.fullmatch(name)
        if (m and m.group(1) in names) or NON_SLOT.fullmatch(name):
            state.add(name)
    return state


def slot_names(tf_var: str, optimizer, tf_name: str | None = None) -> dict[str, str]:
    """``{twin state key: checkpoint name}`` of ``tf_var``'s slots: TF1 names the first
    ``<var>/<Name>``, the next ``<var>/<Name>_1``, ... in the optimizer's order of creation."""
    base = tf_name or twin_info(optimizer).tf_name
    return {key: f"{tf_var}/{base}" + (f"_{i}" if i else "") for i, key in enumerate(slot_order(optimizer))}


def _optimizer_params(optimizer) -> set[int]:
    return {id(p) for group in optimizer.param_groups for p in group["params"]}


def _plan_optimizer(mapping: Mapping, module, optimizer, variables: dict, tf_name) -> dict:
    """Which checkpoint names fill which optimizer state; problems go to ``mapping``."""
    twin_info(optimizer)
    params = dict(module.named_parameters())
    in_optimizer = _optimizer_params(optimizer)
    plan = {"slots": [], "non_slot": {}}
    for pair in mapping.pairs:
        trained = [k for k in pair.torch_keys if k in params and id(params[k]) in in_optimizer]
        if not trained:
            continue
        for key, name in slot_names(pair.tf_name, optimizer, tf_name).items():
            if name not in variables:
                mapping.problems.append(f"checkpoint has no {key!r} slot {name!r} for {pair.tf_name} (saved "
                                        "by another optimizer, or without one? load without optimizer=)")
            else:
                plan["slots"].append((pair, key, name, trained))
    wanted = ("beta1_power", "beta2_power") if isinstance(optimizer, TFAdam) else ()
    wanted += ("global_step",)
    for key in wanted:
        found = non_slot_names(variables, key)
        if len(found) == 1:
            plan["non_slot"][key] = found[0]
        elif len(found) > 1:
            mapping.problems.append(f"checkpoint has several {key}: {', '.join(found)} (several optimizers?)")
        elif key != "global_step":
            mapping.problems.append(f"checkpoint has no {key}: not saved by an AdamOptimizer")
    return plan


def non_slot_names(variables, key: str) -> list[str]:
    """The checkpoint names of ``beta1_power``/``beta2_power``/``global_step``, under any name scope."""
    return sorted(n for n in variables if (m := NON_SLOT.fullmatch(n)) and m.group(1) == key)


def _copy_into(module, state: dict) -> None:
    tensors = module.state_dict(keep_vars=True)
    with torch.no_grad():
        for key, value in state.items():
            target = tensors[key]
            target.copy_(torch.as_tensor(np.ascontiguousarray(value)).to(target.device, target.dtype))


def load_checkpoint_into(module, ckpt_path, name_map: dict, *, optimizer=None, tf_name: str | None = None,
                         ignore=(), ignore_torch=(), cast: bool = False) -> Mapping:
    """Copy a TF1 checkpoint's variables into ``module`` (and, with ``optimizer``, its slots).

    ``name_map``: see :mod:`parity.tf1_map`. ``ignore``: globs of checkpoint variables to leave
    out on purpose; ``ignore_torch``: globs of torch keys left as they are. Optimizer state in the
    checkpoint is recognised (slots ``<var>/<Optimizer>[_n]``, beta powers, ``global_step``) and
    loaded only with ``optimizer`` (``tf_name``: the TF1 optimizer's ``name=`` if not the default).
    ``cast``: allow a dtype change. Returns the :class:`Mapping`; refuses (``TransferError``, one
    line, every problem) before copying anything.
    """
    variables = checkpoint_variables(ckpt_path)
    state_names = optimizer_state_names(variables, tf_name)
    mapping = resolve(name_map, variables, torch_tensors_of(module), optimizer_state=state_names,
                      ignore=ignore, ignore_torch=ignore_torch, cast=cast)
    plan = _plan_optimizer(mapping, module, optimizer, variables, tf_name) if optimizer is not None else None
    mapping.raise_if_problems(f"checkpoint {os.fspath(ckpt_path)} -> torch")
    reader = open_checkpoint(ckpt_path)
    state = mapping.to_torch({p.tf_name: reader.get_tensor(p.tf_name) for p in mapping.pairs})
    _copy_into(module, state)
    if plan is not None:
        params = dict(module.named_parameters())
        with torch.no_grad():
            for pair, key, name, trained in plan["slots"]:
                values = pair.to_torch(reader.get_tensor(name), offset=False)
                for torch_key in trained:
                    p = params[torch_key]
                    optimizer.state[p][key] = torch.as_tensor(values[torch_key]).to(p.device, p.dtype).clone()
        for key, name in plan["non_slot"].items():
            value = reader.get_tensor(name)
            if key == "global_step":
                set_global_step(optimizer, int(value))
            else:
                for group in optimizer.param_groups:
                    group[key] = float(np.float32(value))
        mapping.notes.append(f"optimizer state loaded: {len(plan['slots'])} slot variables"
                             + "".join(f", {name}" for name in plan["non_slot"].values()))
    return mapping


def _tf_shape(pair_kind: str, target: Target, torch_shapes: tuple) -> tuple | None:
    """The TF1 shape that ``kind`` turns into ``torch_shapes`` (for writing without a reference)."""
    first = torch_shapes[0]
    if pair_kind in ("same", "lstm_bias"):
        shape = first
    elif pair_kind == "dense" and len(first) == 2:
        shape = first[::-1]
    elif pair_kind == "conv2d" and len(first) == 4:
        shape = (first[2], first[3], first[1], first[0])
    elif pair_kind == "conv1d" and len(first) == 3:
        shape = (first[2], first[1], first[0])
    elif pair_kind == "lstm_kernel" and len(first) == 2 and len(torch_shapes) == 2:
        shape = (first[1] + torch_shapes[1][1], first[0])
    else:
        shape = None
    if shape is None or torch_shapes_for(pair_kind, shape, target, torch_shapes) != torch_shapes:
        return None
    return tuple(shape)


def _mapping_for_save(module, name_map: dict, reference, ignore_torch, tf_name) -> Mapping:
    torch_tensors = torch_tensors_of(module)
    if reference is not None:
        variables = checkpoint_variables(reference) if not isinstance(reference, dict) else dict(reference)
        return resolve(name_map, variables, torch_tensors,
                       optimizer_state=optimizer_state_names(variables, tf_name), ignore_torch=ignore_torch)
    # no reference: the name map's exact names and explicit kinds say the TF1 shapes
    variables, problems = {}, []
    for name, value in name_map.items():
        if not isinstance(name, str) or any(c in name for c in "*?"):
            problems.append(f"pattern {getattr(name, 'pattern', name)!r} needs reference= (a checkpoint "
                            "whose names it matches)")
            continue
        target = value if isinstance(value, Target) else Target((value,), "auto")
        if target.kind == "auto":
            problems.append(f"{name!r} -> {target.keys[0]!r}: give its layout (same, dense, conv2d, ...) or "
                            "reference=, to know the TF1 shape")
            continue
        if any(k not in torch_tensors for k in target.keys):
            variables[name] = ((0,), "float32")  # resolve() reports the missing key
            continue
        shape = _tf_shape(target.kind, target, tuple(torch_tensors[k][0] for k in target.keys))
        if shape is None:
            problems.append(f"{name!r}: torch {', '.join(target.keys)} cannot be a {target.kind} layout")
            continue
        variables[name] = (shape, torch_tensors[target.keys[0]][1])
    mapping = resolve({k: v for k, v in name_map.items() if k in variables}, variables, torch_tensors,
                      ignore_torch=ignore_torch) if variables else Mapping(problems=["nothing to write"])
    mapping.problems[:0] = problems
    return mapping


def save_checkpoint_from(module, ckpt_path, name_map: dict, *, optimizer=None, reference=None,
                         tf_name: str | None = None, ignore_torch=()) -> Mapping:
    """Write ``module`` (and ``optimizer``'s state) as a TF1 checkpoint at prefix ``ckpt_path``.

    ``reference``: a checkpoint (or ``{name: (shape, dtype)}``) whose variable names and shapes to
    write, e.g. the one the module was loaded from; without it the name map must use exact names
    and explicit layouts. The result restores into the original graph with ``Saver.restore``.
    Refuses (one line) before writing anything.
    """
    import tensorflow as tf

    tf1 = tf.compat.v1
    mapping = _mapping_for_save(module, name_map, reference, ignore_torch, tf_name)
    params = dict(module.named_parameters())
    values = {p.tf_name: p.to_tf({k: t.detach().cpu().numpy() for k, t in module.state_dict().items()})
              for p in mapping.pairs} if mapping.ok else {}
    extra = {}
    if optimizer is not None and mapping.ok:
        twin_info(optimizer)
        in_optimizer = _optimizer_params(optimizer)
        for pair in mapping.pairs:
            trained = [k for k in pair.torch_keys if k in params and id(params[k]) in in_optimizer]
            if not trained:
                continue
            for key, name in slot_names(pair.tf_name, optimizer, tf_name).items():
                state = {k: (optimizer.state.get(params[k], {}).get(key)) for k in pair.torch_keys}
                if any(state[k] is None for k in trained):
                    mapping.problems.append(f"optimizer has no {key!r} slot for {', '.join(trained)} (take a "
                                            "step first, or save without optimizer=)")
                    continue
                arrays = {k: (state[k].detach().cpu().numpy() if state[k] is not None
                              else np.zeros(tuple(params[k].shape) if k in params else ()))
                          for k in pair.torch_keys}
                extra[name] = pair.to_tf(arrays, offset=False)
        group = optimizer.param_groups[0]
        names = _reference_names(reference) if reference is not None else None

        def name_of(key):
            found = non_slot_names(names, key) if names is not None else [key]
            return found[0] if found else None

        if isinstance(optimizer, TFAdam):
            for key in ("beta1_power", "beta2_power"):
                extra[name_of(key) or key] = np.float32(group[key])
        if reference is None or name_of("global_step"):
            extra[name_of("global_step") or "global_step"] = np.int64(global_step_of(optimizer))
    mapping.raise_if_problems(f"torch -> checkpoint {os.fspath(ckpt_path)}")
    Path(os.fspath(ckpt_path)).parent.mkdir(parents=True, exist_ok=True)
    with tf.Graph().as_default(), tf1.Session() as sess:
        variables = {}
        for index, (name, value) in enumerate({**values, **extra}.items()):
            value = np.asarray(value)
            variables[name] = tf1.get_variable(f"v{index}", shape=value.shape, dtype=tf.as_dtype(value.dtype),
                                               initializer=tf1.zeros_initializer(), use_resource=True)
        sess.run(tf1.global_variables_initializer())
        for name, value in {**values, **extra}.items():
            variables[name].load(np.asarray(value), sess)
        tf1.train.Saver(var_list=variables).save(sess, os.fspath(ckpt_path), write_meta_graph=False)
    return mapping


def _reference_names(reference) -> set:
    return set(reference) if isinstance(reference, dict) else set(checkpoint_variables(reference))


def describe(path) -> str:
    """A table of a checkpoint's variables (name, shape, dtype): what a name map is written from."""
    rows = sorted(checkpoint_variables(path).items())
    width = max((len(n) for n, _ in rows), default=4)
    return "\n".join(f"{name:<{width}}  {str(shape):<20} {dtype}" for name, (shape, dtype) in rows)


__all__ = ["open_checkpoint", "checkpoint_variables", "load_checkpoint_into", "save_checkpoint_from",
           "optimizer_state_names", "slot_names", "describe", "Pair"]


# --- command line ----------------------------------------------------------------------------------

def _import(spec: str, what: str):
    import importlib

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise InputError(f"{what} {spec!r}: expected package.module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InputError(f"{what} {spec!r}: cannot import {module_name} ({_one_line(error)})") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise InputError(f"{what} {spec!r}: {module_name} has no attribute {attribute!r}") from None


def _json(text: str, what: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except ValueError as error:
        raise InputError(f"{what}: not JSON ({error})") from None
    if not isinstance(value, dict):
        raise InputError(f"{what}: expected a JSON object, got {text!r}")
    return value


def main(argv=None) -> int:
    """``inspect CKPT``: list a checkpoint's variables. ``convert CKPT OUT.pt --module M:F --map M:N``:
    build the torch module ``F(**kwargs)``, load the checkpoint through the name map ``N`` (a dict,
    or a function returning one, called with ``--map-kwargs``) and save its ``state_dict``."""
    import argparse
    import io

    parser = argparse.ArgumentParser(prog="python -m parity.tf1_checkpoint", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="list the variables of a TF1 checkpoint")
    inspect.add_argument("checkpoint")
    convert = commands.add_parser("convert", help="a TF1 checkpoint -> a torch state_dict file")
    convert.add_argument("checkpoint")
    convert.add_argument("output")
    convert.add_argument("--module", required=True, help="package.module:factory of the torch module")
    convert.add_argument("--kwargs", default="{}", help="JSON keyword arguments of the factory")
    convert.add_argument("--map", required=True, help="package.module:NAME_MAP (a dict or a function)")
    convert.add_argument("--map-kwargs", default="{}", help="JSON keyword arguments of a name-map function")
    convert.add_argument("--double", action="store_true", help="build the module in float64")
    convert.add_argument("--cast", action="store_true", help="allow a dtype change (float32 -> float64)")
    args = parser.parse_args(argv)
    if args.command == "inspect":
        print(describe(args.checkpoint))
        return 0
    from signs.files import atomic_write

    factory = _import(args.module, "--module")
    name_map = _import(args.map, "--map")
    if callable(name_map):
        name_map = name_map(**_json(args.map_kwargs, "--map-kwargs"))
    try:
        module = factory(**_json(args.kwargs, "--kwargs"))
    except Exception as error:
        raise InputError(f"--module {args.module}: building it raised {type(error).__name__}: "
                         f"{_one_line(error)[:200]}") from None
    if args.double:
        module = module.double()
    mapping = load_checkpoint_into(module, args.checkpoint, name_map, cast=args.cast)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    atomic_write(args.output, lambda handle: handle.write(buffer.getvalue()))
    print(f"{len(mapping.pairs)} variables of {args.checkpoint} -> {args.output}")
    return 0


if __name__ == "__main__":
    import sys

    from signs.cli import run_main

    sys.exit(run_main(main))
