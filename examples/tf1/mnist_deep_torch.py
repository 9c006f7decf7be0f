"""The PyTorch twin of :mod:`examples.tf1.mnist_deep`: the same layers, idiomatic torch.

Differences that the name map absorbs (:data:`NAME_MAP`): kernels OIHW instead of HWIO, linear
weights ``(out, in)`` instead of ``(in, out)``, and ``torch.flatten`` of an NCHW map, which orders
``fc1``'s inputs (c, h, w) where TF1's reshape of the NHWC map ordered them (h, w, c).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from parity.tf1 import dense


class DeepNN(nn.Module):
    def __init__(self, conv1=32, conv2=64, fc=1024, keep_prob=0.5):
        super().__init__()
        self.conv1 = nn.Conv2d(1, conv1, 5, padding=2)
        self.conv2 = nn.Conv2d(conv1, conv2, 5, padding=2)
        self.fc1 = nn.Linear(7 * 7 * conv2, fc)
        self.dropout = nn.Dropout(1 - keep_prob)
        self.fc2 = nn.Linear(fc, 10)

    def forward(self, x):
        x = x.reshape(-1, 1, 28, 28)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(self.dropout(x))


def name_map(conv2=64) -> dict:
    """TF1 checkpoint names -> ``DeepNN`` keys: globs for the two conv blocks, ``fc1``'s kernel
    with the NHWC -> NCHW flatten permutation, the rest by shape."""
    return {
        "conv*/Variable": "conv{1}.weight",      # HWIO -> OIHW, told by the shapes
        "conv*/Variable_1": "conv{1}.bias",
        "fc1/Variable": dense("fc1.weight", flatten_hwc=(7, 7, conv2)),
        "fc1/Variable_1": "fc1.bias",
        "fc2/Variable": "fc2.weight",            # (in, out) -> (out, in), told by the shapes
        "fc2/Variable_1": "fc2.bias",
    }


def loss(logits, labels):
    """``reduce_mean(softmax_cross_entropy_with_logits(labels, logits))`` with one-hot labels."""
    return F.cross_entropy(logits, labels)
