"""The PyTorch twin of :mod:`examples.tf1.layers_cnn`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from parity.tf1 import dense


class CNN(nn.Module):
    def __init__(self, conv1=32, conv2=64, fc=1024, rate=0.4):
        super().__init__()
        self.conv1 = nn.Conv2d(1, conv1, 5, padding=2)
        self.conv2 = nn.Conv2d(conv1, conv2, 5, padding=2)
        self.dense = nn.Linear(7 * 7 * conv2, fc)
        self.dropout = nn.Dropout(rate)
        self.logits = nn.Linear(fc, 10)

    def forward(self, x):
        x = x.reshape(-1, 1, 28, 28)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.dropout(F.relu(self.dense(torch.flatten(x, 1))))
        return self.logits(x)


def name_map(conv2=64) -> dict:
    return {
        "conv2d/kernel": "conv1.weight", "conv2d/bias": "conv1.bias",
        "conv2d_1/kernel": "conv2.weight", "conv2d_1/bias": "conv2.bias",
        "dense/kernel": dense("dense.weight", flatten_hwc=(7, 7, conv2)), "dense/bias": "dense.bias",
        "dense_1/kernel": "logits.weight", "dense_1/bias": "logits.bias",
    }


def loss(logits, labels):
    """``tf.compat.v1.losses.sparse_softmax_cross_entropy``: the mean over the batch of integer-label
    cross-entropies -- computed in **float32** even in a float64 graph: TF1's
    ``compute_weighted_loss`` casts the per-example losses to float32, sums and divides there,
    and casts the result back (its gradient is therefore ``float32(1 / batch)`` per example)."""
    losses = F.cross_entropy(logits, labels, reduction="none")
    return (losses.float().sum() / losses.numel()).to(losses.dtype)
