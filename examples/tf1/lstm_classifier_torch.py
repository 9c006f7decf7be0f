"""The PyTorch twin of :mod:`examples.tf1.lstm_classifier`: ``nn.LSTM`` + ``nn.Linear``.

TF1's ``BasicLSTMCell`` has one kernel ``(num_input + num_hidden, 4 num_hidden)`` for
``concat([x, h]) @ kernel``, gates in the order i, j (the candidate), f, o, one bias, and adds
``forget_bias`` (1.0) to the forget gate inside the cell. ``nn.LSTM`` has ``weight_ih``,
``weight_hh`` ``(4 hidden, .)`` with gates i, f, g, o and two biases. :data:`NAME_MAP` splits and
reorders the kernel (``lstm_kernel``) and moves the bias, plus ``forget_bias``, into ``bias_ih``
(``lstm_bias``); ``bias_hh`` stays zero and frozen, or both biases would learn.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from parity.tf1 import lstm_bias, lstm_kernel


class LSTMClassifier(nn.Module):
    def __init__(self, num_input=28, num_hidden=128, num_classes=10):
        super().__init__()
        self.lstm = nn.LSTM(num_input, num_hidden, batch_first=True)
        self.lstm.bias_hh_l0.data.zero_()
        self.lstm.bias_hh_l0.requires_grad_(False)
        self.out = nn.Linear(num_hidden, num_classes)

    def forward(self, x):
        outputs, _ = self.lstm(x)
        return self.out(outputs[:, -1])


NAME_MAP = {
    "rnn/basic_lstm_cell/kernel": lstm_kernel("lstm.weight_ih_l0", "lstm.weight_hh_l0"),
    "rnn/basic_lstm_cell/bias": lstm_bias("lstm.bias_ih_l0", "lstm.bias_hh_l0", forget_bias=1.0),
    "Variable": "out.weight",       # weights['out'] (hidden, classes) -> (classes, hidden)
    "Variable_1": "out.bias",       # biases['out']
}


def loss(logits, labels):
    return F.cross_entropy(logits, labels)
