"""Monitor: gradient norms, Welford running statistics, activation statistics, zero cost when
detached."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import nn
from tests.conftest import to_np


def test_grad_norms_and_running_statistics(backend, rng):
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    monitor = nn.Monitor(model)
    seen = {name: [] for name, _ in model.named_parameters()}
    norms = {name: [] for name in seen}
    for _ in range(4):
        x = ember.tensor(rng.standard_normal((5, 3)).astype(np.float32))
        model.zero_grad()
        model(x).sum().backward()
        monitor.step()
        for name, p in model.named_parameters():
            seen[name].append(to_np(p).astype(np.float64).ravel())
            norms[name].append(np.linalg.norm(to_np(p.grad).astype(np.float64)))
            p.data = p.data - 0.1 * p.grad.data  # an SGD step: the values drift
    history = monitor.history()
    assert monitor.steps == 4
    assert set(history) == {f"{n}/{s}" for n in seen for s in ("grad_norm", "mean", "var")}
    for name in seen:
        np.testing.assert_allclose(history[f"{name}/grad_norm"], norms[name], rtol=1e-5)
        for t in range(4):
            values = np.concatenate(seen[name][: t + 1])  # every value held so far
            np.testing.assert_allclose(history[f"{name}/mean"][t], values.mean(), rtol=1e-5,
                                       atol=1e-7)
            np.testing.assert_allclose(history[f"{name}/var"][t], values.var(), rtol=1e-5)
        assert history[f"{name}/mean"].dtype == np.float64


def test_missing_gradients_record_nan(backend):
    model = nn.Linear(2, 1)
    monitor = nn.Monitor(model)
    monitor.step()
    assert np.isnan(monitor.history()["weight/grad_norm"]).all()
    assert np.isfinite(monitor.history()["weight/mean"]).all()
    assert "Monitor(Linear, parameters=2, steps=1, activation_hooks=0)" == repr(monitor)


def test_activation_statistics_and_detach(backend, rng):
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2))
    x = rng.standard_normal((10, 3)).astype(np.float32)
    with nn.Monitor(model, activations=True) as monitor:
        assert all(m._forward_hooks is not None for m in model.children())
        model(ember.tensor(x))
        model(ember.tensor(x * 2))
    history = monitor.history()
    h = np.maximum(x @ to_np(model[0].weight).T + to_np(model[0].bias), 0)
    np.testing.assert_allclose(history["1/act_mean"][0], h.mean(), rtol=1e-5)
    np.testing.assert_allclose(history["1/act_std"][0], h.std(), rtol=1e-4)
    np.testing.assert_allclose(history["1/act_zero_frac"][0], (h == 0).mean())
    assert history["0/act_mean"].shape == (2,) and history["2/act_std"].shape == (2,)
    assert "model/act_mean" not in history  # containers are not recorded twice
    # detached: no hooks left, nothing recorded, nothing on the call path
    assert all(m._forward_hooks is None for m in model.modules())
    model(ember.tensor(x))
    assert monitor.history()["1/act_mean"].shape == (2,)


def test_no_monitor_no_hooks():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    model(ember.ones(1, 2))
    assert all(m._forward_hooks is None for m in model.modules())


@pytest.mark.parametrize("activations", [False, True])
def test_monitor_of_a_parameterless_model(activations):
    monitor = nn.Monitor(nn.ReLU(), activations=activations)
    monitor.step()
    assert monitor.steps == 1
    assert set(monitor.history()) == ({"model/act_mean", "model/act_std", "model/act_zero_frac"}
                                      if activations else set())
