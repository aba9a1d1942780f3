"""Array backends: where ember's math actually runs.

ember computes on NumPy (the default, nothing to compile) or on JAX (compiled by XLA). Everything
above this package asks :func:`get` for the active backend and calls ``backend.xp`` (the array
namespace, ``numpy`` or ``jax.numpy``) or one of the few kernels whose best form differs between the
two (scatter-add for index gradients, random draws, ``erf``, host transfer).

Example:
    >>> import ember
    >>> ember.get_backend()
    'numpy'
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from ember.backend.base import Backend

__all__ = [
    "Backend",
    "get",
    "set_backend",
    "get_backend",
    "available",
    "float16",
    "float32",
    "float64",
    "int32",
    "int64",
    "bool_",
    "uint8",
    "default_float",
    "default_int",
    "as_dtype",
    "is_traced",
]

# dtypes are NumPy dtype objects on both backends (jax.numpy uses the same ones).
float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")
default_float = float32
default_int = int64



def as_dtype(dtype: Any) -> np.dtype:
    """A dtype object from a name, a type or a dtype (``"float32"``, ``ember.float64``…).

    Example:
        >>> import ember
        >>> ember.as_dtype("float64"), ember.as_dtype(ember.int32)
        (dtype('float64'), dtype('int32'))
    """
    if str(getattr(dtype, "name", dtype)) == "bfloat16" or getattr(dtype, "__name__", "") == (
            "bfloat16"):
        raise TypeError("bfloat16 is not supported: NumPy has no bfloat16 arithmetic of its own "
                        "(with ml_dtypes a matmul of two bfloat16 arrays returns float32), and "
                        "ember computes the same way on both backends; use float16 (optimizers "
                        "keep float32 master weights for it) or float32")
    try:
        out = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"not a dtype: {dtype!r}") from e
    if out.kind not in "fiub":
        raise TypeError(f"ember supports floating point, integer and boolean dtypes, not {out}")
    return out


def is_traced(array: Any) -> bool:
    """True for a JAX tracer: an abstract value inside a compiled function, with no numbers yet.

    Example (a concrete array of either backend is not traced):
        >>> from ember import backend
        >>> backend.is_traced(backend.get().xp.ones(2))
        False
    """
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(array, jax.core.Tracer)


_NAMES = ("numpy", "jax")
_active: Backend | None = None
_instances: dict[str, Backend] = {}


def _make(name: str) -> Backend:
    if name not in _instances:
        if name == "numpy":
            from ember.backend.numpy_backend import NumpyBackend

            _instances[name] = NumpyBackend()
        elif name == "jax":
            try:
                from ember.backend.jax_backend import JaxBackend
            except ImportError as e:  # jax is an optional extra
                raise ImportError(
                    f'the jax backend needs JAX, which is not installed ({e}); '
                    f'install it with: pip install "ember[jax]"'
                ) from e
            _instances[name] = JaxBackend()
        else:
            raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(_NAMES)}")
    return _instances[name]


def get() -> Backend:
    """The active backend (chosen by :func:`set_backend` or ``EMBER_BACKEND``, else NumPy).

    Example:
        >>> from ember import backend
        >>> bk = backend.get()
        >>> bk.name, bk.to_numpy(bk.xp.arange(3)).tolist()
        ('numpy', [0, 1, 2])
    """
    global _active
    if _active is None:
        env = os.environ.get("EMBER_BACKEND", "numpy").strip().lower() or "numpy"
        if env not in _NAMES:
            raise ValueError(
                f"EMBER_BACKEND={env!r} is not a backend; choose one of {', '.join(_NAMES)}"
            )
        _active = _make(env)
    return _active


def set_backend(name: str) -> None:
    """Make ``name`` ("numpy" or "jax") the active backend for new tensors and ops.

    Tensors made before the switch keep their arrays; using them together with tensors of the new
    backend raises an error (convert with ``ember.tensor(t.numpy())``).

    Example:
        >>> import ember
        >>> ember.set_backend("numpy")
        >>> ember.get_backend()
        'numpy'
    """
    global _active
    if not isinstance(name, str):
        raise TypeError(f"set_backend expects a backend name, got {type(name).__name__}")
    _active = _make(name.strip().lower())


def get_backend() -> str:
    """The name of the active backend: ``"numpy"`` or ``"jax"``.

    Example:
        >>> import ember
        >>> ember.get_backend()
        'numpy'
    """
    return get().name


def available() -> list[str]:
    """The backends that can be used on this machine.

    Example:
        >>> from ember import backend
        >>> "numpy" in backend.available()
        True
    """
    names = ["numpy"]
    try:
        _make("jax")
        names.append("jax")
    except ImportError:
        pass
    return names
