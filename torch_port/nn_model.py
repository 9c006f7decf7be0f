"""The tutorial written the way PyTorch code is usually written.

``nn.Module`` with three ``nn.Linear`` layers, a ``Dataset`` over the SIGNS arrays and a
``DataLoader``. Layout: ``(examples, features)`` throughout, as PyTorch expects: inputs
(m, 12288), logits (m, 6), integer labels (m,). ``nn.Linear.weight`` is (out, in), which is
the tutorial's ``W`` as it is; only the biases change shape, (n, 1) -> (n,).

Same numbers as the line-by-line port: the same initial weights, the same mini-batches in the
same order (the sampler replays the original's ``np.random.seed(seed)`` permutation with seed
4, 5, ... per epoch) and the same TF1 Adam.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from signs import minibatch_indices
from signs.errors import NonFiniteCost
from signs.weights import check_parameters, load_initial_parameters
from torch_port.dtypes import dtype_name, torch_dtype
from torch_port.optim import adam_slots, load_adam_slots, make_optimizer

# tutorial name -> state_dict name; W is (out, in) on both, b is (n, 1) vs (n,).
TUTORIAL_TO_MODULE = {"W1": "fc1.weight", "b1": "fc1.bias", "W2": "fc2.weight",
                      "b2": "fc2.bias", "W3": "fc3.weight", "b3": "fc3.bias"}


class SignsNet(nn.Module):
    """LINEAR(12288 -> 25) -> RELU -> LINEAR(25 -> 12) -> RELU -> LINEAR(12 -> 6).

    ``forward`` maps (m, 12288) to logits (m, 6); the softmax lives in the loss.
    """

    def __init__(self, n_x: int = 12288, n_h1: int = 25, n_h2: int = 12, n_y: int = 6):
        super().__init__()
        self.fc1 = nn.Linear(n_x, n_h1)
        self.fc2 = nn.Linear(n_h1, n_h2)
        self.fc3 = nn.Linear(n_h2, n_y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)

    def load_tutorial_parameters(self, parameters: dict) -> SignsNet:
        """Copy tutorial-layout arrays (``W`` (out, in), ``b`` (n, 1)) into the layers."""
        values = check_parameters(parameters, "tutorial parameters")
        state = {TUTORIAL_TO_MODULE[name]: torch.as_tensor(value).reshape(-1)
                 if name.startswith("b") else torch.as_tensor(value)
                 for name, value in values.items()}
        with torch.no_grad():
            for key, tensor in self.state_dict().items():
                tensor.copy_(state[key])
        return self

    def tutorial_parameters(self) -> dict[str, np.ndarray]:
        """The layers' weights in the tutorial's layout, as NumPy (biases back to (n, 1))."""
        state = self.state_dict()
        return {name: state[key].detach().cpu().numpy().reshape(-1, 1).copy() if name.startswith("b")
                else state[key].detach().cpu().numpy().copy()
                for name, key in TUTORIAL_TO_MODULE.items()}


class SignsDataset(Dataset):
    """SIGNS as (example, label) pairs: ``x`` (12288,) float, ``y`` an int64 class index.

    Built from the tutorial's arrays: ``X`` (12288, m) and labels ``(1, m)`` or one-hot (6, m);
    stored transposed, (m, 12288), contiguous, so a batch is a gather of whole rows.
    ``__getitems__`` lets the ``DataLoader`` fetch a batch in one indexing operation instead
    of ``batch_size`` calls to ``__getitem__`` and a collate.
    """

    def __init__(self, X, Y, dtype=torch.float32, device="cpu"):
        Y = np.asarray(Y)
        labels = Y.argmax(axis=0) if Y.shape[0] > 1 else Y.reshape(-1)
        self.x = torch.as_tensor(np.asarray(X).T, dtype=torch_dtype(dtype), device=device).contiguous()
        self.y = torch.as_tensor(labels, dtype=torch.int64, device=device)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index):
        return self.x[index], self.y[index]

    def __getitems__(self, indices):
        index = torch.as_tensor(indices, device=self.x.device)
        return self.x.index_select(0, index), self.y.index_select(0, index)


class TutorialBatchSampler(Sampler):
    """Yields the tutorial's mini-batches: index lists from ``np.random.seed(seed + epoch + 1)``.

    Call :meth:`set_epoch` before iterating (as with ``DistributedSampler``); epoch 0 uses
    seed 4 with the default ``seed=3``, exactly like ``random_mini_batches`` in the original.
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int = 3):
        self.num_examples, self.batch_size, self.seed = num_examples, batch_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        yield from minibatch_indices(self.num_examples, self.batch_size, self.seed + self.epoch + 1)

    def __len__(self) -> int:
        return -(-self.num_examples // self.batch_size)


def _batch_as_is(batch):
    """collate_fn: ``__getitems__`` already returns a stacked ``(x, y)`` batch."""
    return batch


def make_loader(dataset: SignsDataset, batch_size: int = 32, seed: int = 3,
                sampler: TutorialBatchSampler | None = None) -> DataLoader:
    """A ``DataLoader`` over ``dataset`` that replays the original's per-epoch shuffling."""
    sampler = sampler or TutorialBatchSampler(len(dataset), batch_size, seed)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=_batch_as_is)


@dataclass
class TrainingSetup:
    """What a training loop over :class:`SignsNet` starts from (this loop's and the fast path's).

    ``net`` and ``optimizer`` hold the initial (or resumed) state; ``dataset`` the training
    set as (m, 12288); ``sampler`` the tutorial's mini-batches; ``divisor`` what the epoch's
    summed batch costs are divided by; ``costs`` and ``start_epoch`` come from ``resume``.
    """

    net: SignsNet
    optimizer: torch.optim.Optimizer
    dataset: SignsDataset
    sampler: TutorialBatchSampler
    divisor: int
    costs: list
    start_epoch: int
    dtype: torch.dtype

    @property
    def named(self) -> dict:
        return dict(self.net.named_parameters())


def setup_training(X_train, Y_train, learning_rate, minibatch_size, *, dtype, seed,
                   initial_parameters, device, optimizer, epoch_cost, resume) -> TrainingSetup:
    """Build the network, optimizer, data set and sampler of :func:`train` (arguments as there)."""
    if epoch_cost not in ("original", "mean"):
        raise ValueError(f"epoch_cost must be 'original' or 'mean', got {epoch_cost!r}")
    dtype = torch_dtype(dtype)
    if initial_parameters is None:
        initial_parameters = load_initial_parameters(dtype_name(dtype))
    net = SignsNet().to(device=device, dtype=dtype).load_tutorial_parameters(initial_parameters)
    adam = make_optimizer(optimizer, net.parameters(), learning_rate)
    dataset = SignsDataset(X_train, Y_train, dtype, device)
    m = len(dataset)
    sampler = TutorialBatchSampler(m, minibatch_size, seed)
    # The original's quirk: int(m / batch size) full batches (33 for 1080 / 32), though 34 run.
    divisor = int(m / minibatch_size) if epoch_cost == "original" else len(sampler)
    costs, start_epoch = [], 0
    if resume is not None:
        net.load_tutorial_parameters(resume["parameters"])
        adam.load_state_dict(resume["optimizer"])
        costs, start_epoch = list(resume["costs"]), resume["epoch"]
    return TrainingSetup(net, adam, dataset, sampler, divisor, costs, start_epoch, dtype)


def epoch_bar(setup: TrainingSetup, num_epochs: int, progress: bool):
    """The epochs to run, as a tqdm bar (silent unless ``progress``)."""
    return tqdm(range(setup.start_epoch, num_epochs), disable=not progress, unit="epoch",
                initial=setup.start_epoch, total=num_epochs, dynamic_ncols=True)


def train(X_train, Y_train, X_test, Y_test, learning_rate=0.0001, num_epochs=1500,
          minibatch_size=32, print_cost=True, *, dtype="float32", seed=3,
          initial_parameters=None, hook=None, device="cpu", optimizer="tf-adam",
          epoch_cost="original", resume=None, on_epoch_end=None, progress=False):
    """Train :class:`SignsNet`; return ``(parameters, costs)`` like ``torch_port.model.model``.

    Takes the tutorial's arrays (``X`` (12288, m), one-hot ``Y`` (6, m)) so both ports can be
    called the same way; the returned parameters are in the tutorial's layout.

    ``epoch_cost``: ``"original"`` keeps the original's quirk (sum of batch costs divided by
    ``int(m / batch_size)``, the number of *full* batches: 33 for 1080 / 32, though 34 run);
    ``"mean"`` divides by the number of batches actually run.
    ``hook``, ``resume``, ``on_epoch_end``: as in ``torch_port.model.model``, except that the
    hook's ``output`` is the logits (m, 6) and its dicts are keyed by ``state_dict`` names.

    :func:`torch_port.fast.train` computes the same bits without the ``DataLoader``, the
    autograd graph and the allocations; this loop stays the readable reference.
    """
    setup = setup_training(X_train, Y_train, learning_rate, minibatch_size, dtype=dtype, seed=seed,
                           initial_parameters=initial_parameters, device=device, optimizer=optimizer,
                           epoch_cost=epoch_cost, resume=resume)
    net, adam, named = setup.net, setup.optimizer, setup.named
    loader = make_loader(setup.dataset, sampler=setup.sampler)
    costs, step = setup.costs, 0

    net.train()
    bar = epoch_bar(setup, num_epochs, progress)
    for epoch in bar:
        loader.batch_sampler.set_epoch(epoch)
        batches = list(loader.batch_sampler) if hook is not None else None
        running, batch_costs = 0.0, []
        for k, (x, y) in enumerate(loader):
            adam.zero_grad()
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            adam.step()
            batch_costs.append(loss.detach())
            if hook is not None:
                step += 1
                forced = hook(step_record(epoch, step, batches[k], logits, loss, named, adam))
                if forced:
                    force_state(named, adam, forced)
            running += loss.detach() / setup.divisor
        end_epoch(epoch, running.item(), batch_costs, bar, print_cost, costs, on_epoch_end,
                  net.tutorial_parameters, adam)

    net.eval()
    report_accuracies(net, X_train, Y_train, X_test, Y_test, setup.dtype, device, print_cost)
    return net.tutorial_parameters(), costs


def end_epoch(epoch, value, batch_costs, bar, print_cost, costs, on_epoch_end, get_parameters, adam):
    """After an epoch of either loop: stop on a NaN/inf cost (naming the step), show the cost,
    record it every 5 epochs, call ``on_epoch_end``. ``batch_costs``: the epoch's step costs."""
    if not np.isfinite(value):
        steps = torch.stack(list(batch_costs)).cpu()
        bad = int(steps.isfinite().logical_not().nonzero()[0, 0])
        raise NonFiniteCost(epoch, bad + 1, steps[bad].item())
    bar.set_postfix(cost=f"{value:.6f}", refresh=False)
    if print_cost and epoch % 100 == 0:
        tqdm.write(f"Cost after epoch {epoch}: {value:f}")
    if print_cost and epoch % 5 == 0:
        costs.append(value)
    if on_epoch_end is not None:
        on_epoch_end(epoch, value, get_parameters, adam, costs)


@torch.no_grad()
def evaluate(net: nn.Module, dataset: SignsDataset) -> float:
    """Fraction of ``dataset`` whose arg-max logit (over classes, ``dim=1``) is the label."""
    return (net(dataset.x).argmax(dim=1) == dataset.y).to(torch.float32).mean().item()


def report_accuracies(net, X_train, Y_train, X_test, Y_test, dtype, device, print_cost) -> None:
    """Evaluate on both splits and, when ``print_cost``, print them as the original does."""
    accuracies = [evaluate(net, SignsDataset(X, Y, dtype, device)) for X, Y in
                  ((X_train, Y_train), (X_test, Y_test))]
    if print_cost:
        tqdm.write(f"Train Accuracy: {accuracies[0]}")
        tqdm.write(f"Test Accuracy: {accuracies[1]}")


def step_record(epoch, step, batch, logits, loss, named, adam) -> dict:
    """The hook's record of one step, as NumPy copies: ``epoch``, ``step``, ``batch`` (the
    examples' indices), ``output`` (logits (b, 6)), ``cost`` and, keyed by ``state_dict``
    name, ``grads``, ``params`` (after the update), ``m`` and ``v``."""
    def numpy(t):
        return t.detach().cpu().numpy().copy()
    slots = adam_slots(adam, named)
    return {"epoch": epoch, "step": step, "batch": np.asarray(batch), "output": numpy(logits),
            "cost": numpy(loss), "grads": {n: numpy(p.grad) for n, p in named.items()},
            "params": {n: numpy(p) for n, p in named.items()},
            "m": {n: numpy(t) for n, t in slots["m"].items()},
            "v": {n: numpy(t) for n, t in slots["v"].items()}}


def force_state(named, adam, forced) -> None:
    """Teacher forcing: load ``forced["params"]``, ``["m"]`` and ``["v"]`` (NumPy, by
    ``state_dict`` name) into the parameters and the optimizer's moments."""
    with torch.no_grad():
        for name, p in named.items():
            p.copy_(torch.as_tensor(np.asarray(forced["params"][name])))
    load_adam_slots(adam, named, forced["m"], forced["v"])
