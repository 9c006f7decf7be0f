"""Settings for the whole test session (tests/, parity/, docs/).

* One thread per process: the suite runs CLI subprocesses beside in-process training on 2-core
  machines, and OpenMP threads that outnumber the cores spin against each other (measured
  here: an epoch took 10 s instead of 0.6 s). Subprocesses inherit the setting. Set
  OMP_NUM_THREADS yourself to override it.
* The synthetic SIGNS-like set is generated once per session into a temporary
  ``$SIGNS_CACHE_DIR`` (unless the caller set one, as ``.ci/run`` does), so the tests never
  write into the user's home directory; subprocesses inherit the variable.
"""

import os
import shutil
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_TEMP_CACHE = None


def pytest_configure(config):
    global _TEMP_CACHE
    if not os.environ.get("SIGNS_CACHE_DIR"):
        _TEMP_CACHE = tempfile.mkdtemp(prefix="signs-cache-")
        os.environ["SIGNS_CACHE_DIR"] = _TEMP_CACHE


def pytest_unconfigure(config):
    if _TEMP_CACHE is not None:
        shutil.rmtree(_TEMP_CACHE, ignore_errors=True)
        if os.environ.get("SIGNS_CACHE_DIR") == _TEMP_CACHE:
            del os.environ["SIGNS_CACHE_DIR"]
