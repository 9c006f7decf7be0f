"""Every tolerance of the parity tests and report, stated once, with the reason for its size.

Differences are **normwise relative**: ``max|a - b| / max|a|`` per tensor (the worst tensor
of a quantity counts). Element-wise ratios are meaningless where values are near zero
(ReLU-dead units, tiny gradients): one float32 ``dW1`` element differed by a factor 4.6 while
the normwise figure was 6e-7.
"""

from __future__ import annotations

QUANTITIES = ("output", "cost", "grads", "params", "m", "v")

# float64, both modes. Measured: <= 1e-13 on every quantity, teacher-forced and free-running
# over the first epochs (TF1 vs torch; over 1500 epochs the low-loss phase amplifies round-off,
# see parity/test_slow.py, so free-running comparisons here stay short). float64 epsilon is
# 1.1e-16; a 12288-term dot product and Adam's division by sqrt(v) + eps (v tiny early on)
# amplify it by ~1e3 at most. 1e-10 leaves three orders of magnitude of headroom yet is far
# below any formula difference: torch.optim.Adam instead of TF1's formula is 3e-3 after one
# step; Keras's beta**t instead of TF1's float32 accumulators is 2e-6 (see PAIR_OVERRIDES).
FLOAT64 = dict.fromkeys(QUANTITIES, 1e-10)

# float32, teacher-forced (each step starts from the reference's state, so this is one step's
# own error). float32 epsilon is 6e-8. The forward pass sums 12288 products per unit in an
# order that differs between oneDNN/Eigen and torch's BLAS: up to ~1e-6 relative on the output
# and gradients (measured: 1e-6 output, 8e-7 grads). Adam divides m by sqrt(v) + 1e-8; at step
# 1, v = 0.001 g^2, so for gradients near 1e-6 epsilon and sqrt(v) are comparable and a 1e-6
# gradient difference moves the update by up to ~1e-5 of lr, i.e. params by ~1e-5 relative to
# the bias scale. How close the smallest gradients sit to zero, and so this figure, depends on
# the summation order, which depends on the thread count: measured 6.5e-6 with 2 threads and
# 1.5e-5 with 1, always at step 1. The bound is ~3x the worst measured. The cost is a mean of
# 32 log-softmaxes: ~1e-7.
FLOAT32_TEACHER_FORCED = {"output": 5e-6, "cost": 1e-6, "grads": 5e-6, "params": 5e-5,
                          "m": 5e-6, "v": 5e-6}

# float32, free-running: per-step errors accumulate. For the default run (one epoch, 34
# steps) the measured drift stays within the teacher-forced sizes times a small factor;
# longer runs grow to ~1e-3 by epoch 300, the size of TF against itself with oneDNN on vs
# off (TF_ENABLE_ONEDNN_OPTS=0). The report prints the drift per step; these bounds are for
# runs of up to a few hundred steps, not a licence for long ones (see parity/test_slow.py).
FLOAT32_FREE_RUNNING = {"output": 5e-5, "cost": 1e-5, "grads": 5e-5, "params": 1e-4,
                        "m": 5e-5, "v": 5e-5}

TOLERANCES = {
    ("float64", "teacher-forced"): FLOAT64,
    ("float64", "free-running"): FLOAT64,
    ("float32", "teacher-forced"): FLOAT32_TEACHER_FORCED,
    ("float32", "free-running"): FLOAT32_FREE_RUNNING,
}

# TF1 vs Keras: both are TensorFlow, but their Adams differ in one place. Keras 3 computes
# beta ** t with pow in the variable's dtype; TF1 keeps beta1_power and beta2_power as float32
# accumulators. 1 - beta2_power is small early on (0.002 at step 2), so beta2_power's float32
# rounding (6e-8) becomes ~1.5e-5 relative in the step size (measured in float64: params 2.3e-6
# after 3 teacher-forced steps; free-running, every quantity drifts to ~1e-5 within one epoch).
# float32 hides it under its own round-off. This is a difference of formula, not of round-off,
# so it gets its own bounds, for this pair only; torch matches each side exactly by using the
# same convention (``tf-adam`` against TF1, ``keras-adam`` against Keras).
_KERAS_VS_TF1_FREE = {"output": 1e-4, "cost": 1e-6, "grads": 1e-4, "params": 1e-4, "m": 1e-4, "v": 1e-4}
PAIR_OVERRIDES = {
    frozenset(("tf1", "keras")): {("float64", "teacher-forced"): {"params": 5e-5},
                                  ("float64", "free-running"): _KERAS_VS_TF1_FREE},
}


# The float32 parameter bounds above are for the tutorial's learning rate, 1e-4. The error they
# bound is an error in Adam's update, whose size is proportional to the learning rate, while the
# parameters' scale is set by the initialisation; so the relative parameter error grows
# linearly with lr (measured at lr 7e-4, 2 threads: 4.5e-5, i.e. 7x the 6.5e-6 at 1e-4). The bound scales
# the same way for larger learning rates; float64's is far from its round-off either way.
REFERENCE_LR = 1e-4


def tolerances_for(dtype: str, mode: str, pair: tuple[str, str],
                   lr: float = REFERENCE_LR) -> dict[str, float]:
    """The tolerance of each quantity for this dtype, mode, pair and learning rate."""
    key = (dtype, mode)
    if key not in TOLERANCES:
        raise ValueError(f"no tolerances for dtype={dtype!r}, mode={mode!r}")
    values = dict(TOLERANCES[key])
    if dtype == "float32":
        values["params"] *= max(1.0, lr / REFERENCE_LR)
    values.update(PAIR_OVERRIDES.get(frozenset(pair), {}).get(key, {}))
    return values

# Golden-trace comparisons (parity/test_golden.py): the torch port, free-running on CPU or
# CUDA, against TF1's committed trace. The first steps use the free-running bounds above. The
# long summary (every step's cost over 10 epochs, 340 steps, and the parameters at each
# epoch's end, W1 sampled) uses these: float64 stays at round-off (measured on CPU: cost 5e-16,
# params 2e-15); float32 drift grows slowly (measured on CPU: cost 2e-7, params 4.4e-7 by step
# 340). The float32 bounds are ~10x the CPU figures: CUDA sums in another order and may
# drift more, but a formula error (3e-3 per step) or a wrong weight layout would still fail.
GOLDEN_LONG = {"float64": {"cost": 1e-10, "params": 1e-10},
               "float32": {"cost": 2e-6, "params": 5e-6}}

# ---- Generic step parity (parity/generic.py): a user's own Keras model against its torch port ----
# The defaults of parity.generic.step_parity, for a model of any kind; pass tolerances= for yours
# once you know its figures (docs/check_your_own_port.md).
# float64: FLOAT64's reasoning holds for any pair whose two sides use the same formulas:
# round-off is ~1e-16 per operation and 1e-10 leaves six orders of magnitude for long sums and
# Adam's division, yet every convention difference met here is larger (Keras's Python-float
# momentum, beta_1, beta_2 against float32-rounded ones: 3e-9 to 1e-5; torch.optim.Adam's epsilon
# placement: 1e-4 on a tiny MLP, 7e-3 on the SIGNS CNN after one step; a missed Flatten
# permutation or an untransposed kernel: O(1)).
# float32, teacher-forced (one step's own error): sums of thousands of terms in other orders
# (oneDNN against torch's kernels) differ by ~1e-7 to a few 1e-6 normwise (measured: tutorial
# MLP 1e-6, SIGNS CNN up to 3e-6 on a conv kernel's gradient and its v, see CNN below); Adam's
# first steps amplify gradient differences where gradients are tiny (v ~ 0: epsilon and sqrt(v)
# comparable), measured 7e-6 on the MLP's parameters at lr 1e-4. 1e-5, and 5e-5 for
# parameters and slots.
# float32, free-running: the per-step errors add up (roughly linearly for tens of steps):
# 10x the teacher-forced bounds, for runs of a few tens of steps. Longer runs drift further
# (see FLOAT32_FREE_RUNNING): use teacher forcing to bound each step instead.
_GENERIC_F32_TF = {"output": 1e-5, "cost": 1e-5, "grads": 1e-5, "params": 5e-5, "m": 5e-5, "v": 5e-5}
GENERIC = {
    ("float64", "teacher-forced"): FLOAT64,
    ("float64", "free-running"): FLOAT64,
    ("float32", "teacher-forced"): _GENERIC_F32_TF,
    ("float32", "free-running"): {q: 10 * bound for q, bound in _GENERIC_F32_TF.items()},
}


# A tensor that is zero in exact arithmetic (the gradient and Adam slots of a bias followed by
# BatchNorm, which removes any constant) holds round-off noise on both sides, so its own
# normwise relative difference is noise over noise, ~1 (measured: 1.1 for a conv bias before
# BatchNorm, float64, where the absolute difference was 4e-15 against gradients of ~10). The
# generic comparison measures a tensor against its quantity's largest tensor instead when its
# reference is at round-off level next to it: max|a| <= ZERO_TENSOR_FACTOR * eps * that scale
# (float64: 2e-13, float32: 1.2e-4 of it). 1000 eps leaves room for noise summed over long
# reductions, yet a real tensor of that size hardly moves the training; its errors still count,
# relative to the quantity's scale.
ZERO_TENSOR_FACTOR = 1e3


def generic_tolerances(dtype: str, mode: str) -> dict[str, float]:
    """Default bounds of :func:`parity.generic.step_parity` for this dtype and mode."""
    if (dtype, mode) not in GENERIC:
        raise ValueError(f"no generic tolerances for dtype={dtype!r}, mode={mode!r}")
    return dict(GENERIC[(dtype, mode)])


# The SIGNS CNN (tf_original/cnn.py vs torch_port/cnn.py, parity/test_cnn.py): up to 5 steps of
# 64 images, Adam lr 0.009, CPU. Measured (TF 2.21 with oneDNN against torch 2.13): float64 <= 5e-15
# on every quantity in both modes; float32: output <= 4e-7, cost 1e-7, params 9e-7 (step 1), and
# grads, m, v between 5e-7 and 3e-6 -- the worst is always conv1's kernel gradient (v, its
# square, about twice that), and it is not even stable on one machine: torch's own float32
# gradient of conv1's kernel moved by 1.5e-6 relative between two processes given the same
# inputs (CPU kernels whose summation order is not fixed), which took the grads figure from 5e-7 to
# 1.9e-6. Each entry of that gradient sums 64 x 64 x 64 = 262,144 products. float64 keeps
# FLOAT64's 1e-10. float32: 1e-5 teacher-forced (3x the worst seen), 2e-5 free-running (the drift
# does not grow over one epoch, 17 steps: params 8.9e-7 at step 1, 8.4e-7 at step 17; float64
# 4e-15 throughout). A wrong layout is far above either: after one step, a missed Flatten
# permutation is 0.94 on the output and 7e-3 on the cost, a reshaped (untransposed) conv1 kernel
# 0.81 and 2.4e-3 (float32).
CNN = {
    ("float64", "teacher-forced"): FLOAT64,
    ("float64", "free-running"): FLOAT64,
    ("float32", "teacher-forced"): dict.fromkeys(QUANTITIES, 1e-5),
    ("float32", "free-running"): dict.fromkeys(QUANTITIES, 2e-5),
}
# The torch CNN on CUDA against the committed Keras golden (CPU-made; TF32 turned off). cuDNN
# picks its convolution algorithm per shape (implicit GEMM, FFT, Winograd), whose float32 error
# can reach ~1e-5 relative, compounding over the 5 free-running steps: 1e-4 in float32 (still
# 20x below a layout error's cost and 8000x below its output); float64 keeps 1e-10. Not yet
# measured on a GPU here: the GPU test prints its figures.
CNN_CUDA = {
    "float64": FLOAT64,
    "float32": dict.fromkeys(QUANTITIES, 1e-4),
}
