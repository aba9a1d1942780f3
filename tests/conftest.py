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


def to_np(x):
    """A tensor or array as a float64 NumPy array."""
    if isinstance(x, ember.Tensor):
        x = x.numpy()
    return np.asarray(x)


def active_backend():
    return _backend.get()
