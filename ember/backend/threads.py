"""CPU threads: ``ember.set_num_threads(n)`` / ``ember.get_num_threads()`` (PyTorch's names).

ember's CPU work runs in two thread pools that it does not own: the BLAS library under NumPy
(OpenBLAS, MKL, BLIS: matrix products and convolutions, which are matrix products) and, on the JAX
backend, XLA's CPU runtime. :func:`set_num_threads` limits the first through ``threadpoolctl`` at
once, at any time; XLA reads its setting when JAX starts its CPU client (the first JAX
computation), so for XLA the call counts only before that: ``n == 1`` switches XLA's
multithreaded Eigen kernels off (``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false``); XLA has no
switch for another count. ``EMBER_NUM_THREADS=n`` in the environment does the same when ember is
imported.

One thread wins on a machine shared with other work (a busy CI runner, several training
processes, a laptop running other jobs): BLAS threads spin while they wait for cores that other
processes hold, and a small model's matrix products are too small to gain from splitting.
Measure both on your machine (``bench/threads.py``).

Example:
    >>> import ember
    >>> before = ember.get_num_threads()
    >>> ember.set_num_threads(2)
    >>> ember.get_num_threads() <= 2
    True
    >>> ember.set_num_threads(before)
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

__all__ = ["set_num_threads", "get_num_threads", "blas_info", "ENV"]

#: the environment variable read when ember is imported
ENV = "EMBER_NUM_THREADS"
_XLA_FLAG = "--xla_cpu_multi_thread_eigen=false"
_state: dict[str, Any] = {"requested": None}


def _controller() -> Any:
    """A fresh view of the loaded libraries (one loaded since the last call is included)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a dependency of ember
        raise ImportError("ember.set_num_threads needs threadpoolctl: pip install "
                          "threadpoolctl") from None
    import numpy  # noqa: F401 - NumPy loads its BLAS, which the controller then finds

    return ThreadpoolController()


def _jax_started() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - a JAX without the module: assume it started
        return True
    return bool(xla_bridge.backends_are_initialized())


def set_num_threads(n: int) -> None:
    """Use ``n`` CPU threads for BLAS (at once) and XLA (if JAX has not started yet).

    Args:
        n: a positive number of threads.

    Example:
        >>> import ember
        >>> ember.set_num_threads(max(1, ember.get_num_threads()))
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"ember.set_num_threads: n must be a positive int, got {n!r}")
    _controller().limit(limits=n, user_api="blas")
    _state["requested"] = n
    flags = os.environ.get("XLA_FLAGS", "")
    has_flag = _XLA_FLAG in flags.split()
    if _jax_started():
        if (n == 1) != has_flag:
            warnings.warn(f"ember.set_num_threads({n}): JAX has already started, so XLA keeps "
                          f"its CPU threads; call it before the first JAX computation, or set "
                          f"{ENV}={n} in the environment", RuntimeWarning, stacklevel=2)
        return
    if n == 1 and not has_flag:
        os.environ["XLA_FLAGS"] = f"{flags} {_XLA_FLAG}".strip()
    elif n > 1 and has_flag:
        os.environ["XLA_FLAGS"] = " ".join(f for f in flags.split() if f != _XLA_FLAG)


def get_num_threads() -> int:
    """The number of threads BLAS uses (the largest over the BLAS libraries loaded).

    Example:
        >>> import ember
        >>> ember.get_num_threads() >= 1
        True
    """
    counts = [lib.num_threads for lib in _controller().select(user_api="blas").lib_controllers]
    if counts:
        return max(counts)
    return _state["requested"] or (os.cpu_count() or 1)


def blas_info() -> list[dict[str, Any]]:
    """The BLAS libraries NumPy loaded: ``internal_api`` (openblas, mkl, blis), ``version``,
    ``num_threads``, ``threading_layer``, ``filepath`` (threadpoolctl's description).

    Example:
        >>> from ember.backend.threads import blas_info
        >>> all("num_threads" in lib for lib in blas_info())
        True
    """
    return [dict(lib.info()) for lib in _controller().select(user_api="blas").lib_controllers]


def _from_env() -> None:
    """Apply ``EMBER_NUM_THREADS`` (called when ember is imported)."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{ENV}={text!r} is not a positive integer; unset it or give a number "
                         f"of threads, e.g. {ENV}=1")
    set_num_threads(n)
