"""Shared fixtures: every test that takes ``backend`` runs once on NumPy and once on JAX."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import backend as _backend

BACKENDS = ["numpy", "jax"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test on each backend (JAX must be installed: the dev extras include it)."""
    previous = ember.get_backend()
    ember.set_backend(request.param)
    ember.manual_seed(0)
    try:
        yield request.param
    finally:
        ember.set_backend(previous)


@pytest.fixture(autouse=True)
def _restore_backend():
    """No test leaks a backend switch or the grad mode into the next one."""
    previous = ember.get_backend()
    yield
    ember.set_backend(previous)
    assert ember.is_grad_enabled(), "a test left gradient recording switched off"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def compiled_differences(fn):
    """``fn`` for ``ember.gradcheck`` whose finite-difference passes run compiled on JAX.

    gradcheck calls ``fn`` once with inputs that require grad (the analytic gradient: this stays
    eager, as users run it) and then twice per input element without grad (central differences).
    On JAX each of those eager calls costs one dispatch per op, seconds for a layer with a few
    hundred elements; here they run as one ``jax.jit`` of ``fn`` (traced once, float64 like the
    eager run, so the numeric gradient moves by rounding only). On NumPy ``fn`` is returned as is.

    Example:
        >>> import ember
        >>> x = ember.tensor([0.5, -1.0], requires_grad=True)
        >>> ember.gradcheck(compiled_differences(lambda t: (t * t).tanh()), x)
        True
    """
    if ember.get_backend() != "jax":
        return fn
    import jax

    compiled = {}

    def wrapper(*args):
        if any(isinstance(a, ember.Tensor) and a.requires_grad for a in args):
            return fn(*args)
        where = [i for i, a in enumerate(args) if isinstance(a, ember.Tensor)]

        def pure(*arrays):
            full = list(args)
            for i, a in zip(where, arrays):
                full[i] = ember.Tensor._make(a, False, None)
            return fn(*full).data

        key = tuple(where)  # gradcheck passes the same non-tensor arguments every call
        if key not in compiled:
            compiled[key] = jax.jit(pure)
        return ember.Tensor._make(compiled[key](*[args[i].data for i in where]), False, None)

    return wrapper


def to_np(x):
    """A tensor or array as a float64 NumPy array."""
    if isinstance(x, ember.Tensor):
        x = x.numpy()
    return np.asarray(x)


def active_backend():
    return _backend.get()
