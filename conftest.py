"""Settings for the whole test session (tests/, parity/, docs/).

One thread per process: the suite runs CLI subprocesses beside in-process training on 2-core
machines, and OpenMP threads that outnumber the cores spin against each other (measured here:
an epoch took 10 s instead of 0.6 s). Subprocesses inherit the setting. Set OMP_NUM_THREADS
yourself to override it.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
