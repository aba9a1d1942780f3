"""Any optax ``GradientTransformation`` as an ember optimizer (JAX backend).

``from_optax(tx, params)`` keeps optax's state pytree as a flat list of arrays, named by their
path in the tree (``"optax.1.0.mu.0"``), next to a ``"step"`` count: the same ``state_dict()`` /
``load_state_dict()`` slots as ember's own optimizers, so checkpoints and ``jax.jit`` treat both
alike. ``step()`` runs ``tx.update(grads, state, params)`` and ``optax.apply_updates``.

Example:
    >>> import ember, optax
    >>> ember.set_backend("jax")
    >>> w = ember.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = ember.optim.from_optax(optax.sgd(0.5), [w])
    >>> w.grad = ember.tensor([1.0, 1.0]); opt.step()
    >>> w.tolist()
    [0.5, -1.5]
    >>> ember.set_backend("numpy")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ember import backend
from ember.function import enable_grad
from ember.optim.optimizer import Optimizer, as_backend_array, as_param_list, check_state_dict

__all__ = ["from_optax", "OptaxOptimizer"]


class OptaxOptimizer(Optimizer):
    """An optax transformation wrapped as an ember optimizer; made by :func:`from_optax`.

    One parameter group; no ``lr`` of its own (the transformation holds it, schedules included),
    no ``clip_norm=`` (chain ``optax.clip_by_global_norm`` instead). Every parameter needs a
    gradient at each step, as optax updates them all.

    Example:
        >>> import ember, optax
        >>> ember.set_backend("jax")
        >>> w = ember.tensor([1.0, 2.0], requires_grad=True)
        >>> opt = ember.optim.from_optax(optax.adam(0.1), [w])
        >>> w.grad = ember.tensor([1.0, -1.0]); opt.step()
        >>> isinstance(opt, ember.optim.OptaxOptimizer), [round(v, 4) for v in w.tolist()]
        (True, [0.9, 2.1])
        >>> ember.set_backend("numpy")
    """

    def __init__(self, transformation: Any, params: Any) -> None:  # noqa: D107
        if backend.get().name != "jax":
            raise RuntimeError(f"from_optax needs the jax backend (the active one is "
                               f"{backend.get().name!r}); call ember.set_backend('jax') first")
        if not (hasattr(transformation, "init") and hasattr(transformation, "update")):
            raise TypeError(f"from_optax expects an optax GradientTransformation (with init and "
                            f"update), got {type(transformation).__name__}")
        import jax

        self.transformation = transformation
        self._params = as_param_list("from_optax", params)
        seen: set[int] = set()
        for j, p in enumerate(self._params):
            if id(p) in seen:
                raise ValueError(f"from_optax: parameter {j} (shape {p.shape}) appears twice in "
                                 f"the parameter list; pass each parameter once")
            seen.add(id(p))
        self.param_groups = [{"params": self._params}]
        self.defaults = {}
        self.state = {}
        self.clip_norm = self.clip_value = None
        state = transformation.init([p.data for p in self._params])
        with_paths, self._treedef = jax.tree_util.tree_flatten_with_path(state)
        self._names = [_slot_name(jax.tree_util.keystr(path, simple=True, separator="."))
                       for path, _ in with_paths]
        self._leaves = [jax.numpy.asarray(leaf) for _, leaf in with_paths]
        self._step = backend.get().xp.zeros((), dtype=backend.int32)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Apply one optax update to every parameter (each must have a gradient)."""
        import jax
        import optax

        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for j, p in enumerate(self._params):
            if p.grad is None:
                raise ValueError(f"from_optax: parameter {j} (shape {p.shape}) has no gradient; "
                                 f"optax updates every parameter at each step, so every "
                                 f"parameter needs a .grad (e.g. a zero one)")
        params = [p.data for p in self._params]
        grads = [p.grad.data for p in self._params]  # type: ignore[union-attr]
        state = jax.tree_util.tree_unflatten(self._treedef, self._leaves)
        updates, state = self.transformation.update(grads, state, params)
        for p, new in zip(self._params, optax.apply_updates(params, updates)):
            p.data = new
        self._leaves = jax.tree_util.tree_leaves(state)
        self._step = self._step + 1
        return loss

    def state_arrays(self) -> list[Any]:
        """The state protocol: the step count and every leaf of optax's state."""
        return [self._step, *self._leaves]

    def bind(self, arrays: list[Any]) -> None:
        """The state protocol: take a list made like :meth:`state_arrays` as the state."""
        self._step, self._leaves = arrays[0], list(arrays[1:])

    def state_dict(self) -> dict[str, Any]:
        """``"step"`` and every leaf of optax's state, named by its path in the state tree."""
        return {"step": self._step, **dict(zip(self._names, self._leaves))}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the arrays of ``state_dict`` as the state (checked first, as ember's own)."""
        check_state_dict("from_optax", self.state_dict(), state_dict)
        self._step = as_backend_array(state_dict["step"], backend.int32)
        self._leaves = [as_backend_array(state_dict[n], leaf.dtype)
                        for n, leaf in zip(self._names, self._leaves)]

    def config(self) -> dict[str, Any]:
        """What can be said of the transformation: its repr (optax's are not serialisable)."""
        return {"name": "optax", "transformation": repr(self.transformation)}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        raise TypeError("from_optax optimizers have one parameter group; make a new one with "
                        "all the parameters (optax's multi_transform gives per-group rules)")

    def set_schedule(self, schedule: Any, group: int | None = None) -> None:
        raise TypeError("from_optax optimizers take their schedule inside the transformation, "
                        "e.g. optax.adam(optax.cosine_decay_schedule(1e-3, 1000))")

    def __repr__(self) -> str:
        return f"OptaxOptimizer({len(self._params)} parameter(s), {len(self._leaves)} state arrays)"


def _slot_name(path: str) -> str:
    return f"optax.{path}" if path else "optax"


def from_optax(transformation: Any, params: Any) -> OptaxOptimizer:
    """Wrap an optax ``GradientTransformation`` as an ember optimizer (JAX backend only).

    Args:
        transformation: e.g. ``optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(3e-4))``.
        params: the tensors to optimize (``model.parameters()``).

    Example:
        >>> import ember, optax
        >>> ember.set_backend("jax")
        >>> w = ember.zeros(3, requires_grad=True)
        >>> opt = ember.optim.from_optax(optax.adam(1e-3), [w])
        >>> sorted(opt.state_dict())
        ['optax.0.count', 'optax.0.mu.0', 'optax.0.nu.0', 'step']
        >>> ember.set_backend("numpy")
    """
    return OptaxOptimizer(transformation, params)
