"""Training diagnostics: gradient norms, running parameter statistics and activation statistics.

A :class:`Monitor` is attached to a model explicitly. Nothing is recorded, and nothing costs, when
no monitor is attached: parameter statistics are taken only when you call ``monitor.step()``, and
activation statistics come from forward hooks that exist only while a monitor with
``activations=True`` is attached (a module's call tests one attribute for hooks either way).

Example:
    >>> import ember
    >>> from ember import nn
    >>> model = nn.Linear(3, 1)
    >>> monitor = nn.Monitor(model)
    >>> for _ in range(2):
    ...     model.zero_grad()
    ...     model(ember.ones(4, 3)).sum().backward()
    ...     monitor.step()
    >>> history = monitor.history()
    >>> history["weight/grad_norm"].shape, round(float(history["bias/grad_norm"][0]), 3)
    ((2,), 4.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np  # host-side only: the recorded numbers, for plotting

from ember import backend
from ember.nn.module import Module, RemovableHandle
from ember.tensor import Tensor

__all__ = ["Monitor"]


class _Welford:
    """Running count, mean and sum of squared deviations, merged batch by batch (Chan et al.)."""

    __slots__ = ("count", "mean", "m2")

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, count: int, mean: float, m2: float) -> None:
        total = self.count + count
        delta = mean - self.mean
        self.mean += delta * count / total
        self.m2 += m2 + delta * delta * self.count * count / total
        self.count = total

    @property
    def var(self) -> float:
        return self.m2 / self.count if self.count else float("nan")


class Monitor:
    """Record, per parameter and per step, the gradient's L2 norm and the running mean and
    variance of the parameter's values; optionally activation statistics per layer.

    Call :meth:`step` after ``backward()`` (before or after the optimizer step, consistently).
    The running statistics are over every value the parameter has held at the recorded steps
    (all elements, all steps so far), merged with Welford's algorithm, so a weight that drifts
    shows a moving mean and a growing variance. A parameter without a gradient at a step records
    a NaN norm.

    With ``activations=True``, each leaf layer records the mean, standard deviation and fraction
    of exact zeros of its output at every forward call (eager execution only).

    Args:
        model: the module to watch.
        activations: also record activation statistics.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> model = nn.Sequential(nn.Linear(2, 4), nn.ReLU())
        >>> with nn.Monitor(model, activations=True) as monitor:
        ...     _ = model(ember.ones(8, 2))
        >>> sorted(k for k in monitor.history() if k.startswith("1/"))
        ['1/act_mean', '1/act_std', '1/act_zero_frac']
    """

    def __init__(self, model: Module, activations: bool = False) -> None:
        self.model = model
        self._params = list(model.named_parameters())
        self._stats = {name: _Welford() for name, _ in self._params}
        self._records: dict[str, list[float]] = {}
        for name, _ in self._params:
            for what in ("grad_norm", "mean", "var"):
                self._records[f"{name}/{what}"] = []
        self.steps = 0
        self._handles: list[RemovableHandle] = []
        if activations:
            for name, m in model.named_modules():
                if not m._modules:  # leaf layers: containers would repeat their last child
                    self._handles.append(m.register_forward_hook(self._activation_hook(name)))

    def _activation_hook(self, name: str) -> Any:
        label = name or "model"
        keys = [f"{label}/act_{w}" for w in ("mean", "std", "zero_frac")]
        for k in keys:
            self._records.setdefault(k, [])

        def hook(module: Module, args: Any, out: Any) -> None:
            if not isinstance(out, Tensor):
                return
            bk = backend.get()
            xp = bk.xp
            a = out.data
            stats = xp.stack([xp.mean(a), xp.std(a), xp.mean((a == 0).astype(a.dtype))])
            for k, v in zip(keys, bk.to_numpy(stats).tolist()):
                self._records[k].append(float(v))

        return hook

    def step(self) -> None:
        """Record the current gradients and parameter values (one step)."""
        if not self._params:
            self.steps += 1
            return
        bk = backend.get()
        xp = bk.xp
        rows = []
        for _, p in self._params:
            a = p.data
            mean = xp.mean(a)
            m2 = xp.sum((a - mean) ** 2)
            g = p.grad
            norm = xp.sqrt(xp.sum(g.data * g.data)) if g is not None else xp.asarray(xp.nan)
            rows.append(xp.stack([norm.astype(xp.float64), mean.astype(xp.float64),
                                  m2.astype(xp.float64)]))
        values = bk.to_numpy(xp.stack(rows))  # one transfer for every parameter
        for (name, p), (norm, mean, m2) in zip(self._params, values.tolist()):
            stats = self._stats[name]
            stats.update(p.size, mean, m2)
            self._records[f"{name}/grad_norm"].append(norm)
            self._records[f"{name}/mean"].append(stats.mean)
            self._records[f"{name}/var"].append(stats.var)
        self.steps += 1

    def history(self) -> dict[str, np.ndarray]:
        """Everything recorded, as ``"<path>/<statistic>" -> float64 NumPy array`` (one entry per
        step, or per forward call for activation statistics)."""
        return {k: np.asarray(v, dtype=np.float64) for k, v in self._records.items()}

    def detach(self) -> None:
        """Remove the activation hooks: the model runs exactly as without a monitor."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def __repr__(self) -> str:
        return (f"Monitor({type(self.model).__name__}, parameters={len(self._params)}, "
                f"steps={self.steps}, activation_hooks={len(self._handles)})")
