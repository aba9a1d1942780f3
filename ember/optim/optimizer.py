"""The Optimizer base: parameter groups, ``step`` / ``zero_grad``, ``state_dict`` and clipping.

An optimizer is a pure update rule (``ember.optim.rules``) plus this shell, which owns the rule's
state as arrays of the active backend, all made in the constructor: the moments (zeros of each
parameter's shape and dtype), the step count (a 0-d int32 array) and each group's current learning
rate (a 0-d float array). ``step()`` feeds them to the rule and rebinds ``p.data`` and the state to
the results, never writing into an array, so the same optimizer object runs eagerly on NumPy and
inside ``jax.jit`` when its arrays are passed in and out through ``state_dict()`` /
``load_state_dict()``.

Differences from ``torch.optim`` worth knowing: the step count is one per optimizer (as in
optax), not one per parameter, so a parameter that had no gradient for a while is bias-corrected
with the optimizer's count when it next moves; ``state_dict()`` is a flat ``name -> array`` map
(``"step"``, ``"groups.0.lr"``, ``"state.3.exp_avg"``, parameters numbered in group order) and the
hyperparameters are in ``config()``.

Example:
    >>> import ember
    >>> w = ember.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = ember.optim.SGD([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> opt.zero_grad()
    >>> w.tolist()
    [0.800000011920929, -1.600000023841858]
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

from ember import backend
from ember.function import enable_grad
from ember.optim.clip import clip_arrays_by_norm, clip_arrays_by_value
from ember.optim.lr import check_lr
from ember.tensor import Tensor

__all__ = ["Optimizer", "ParamsT"]

ParamsT = Tensor | Iterable[Tensor] | Iterable[dict[str, Any]]


def is_number(value: Any) -> bool:
    """A real number that is not a bool (``True`` is not a learning rate)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


_LOW_PRECISION = ("float16", "bfloat16")  # updated through a float32 master copy


def as_param_list(owner: str, params: Any, where: str = "") -> list[Tensor]:
    """``params`` as a list of distinct trainable tensors, or an error naming the culprit."""
    items = [params] if isinstance(params, Tensor) else list(params)
    if not items:
        raise ValueError(f"{owner}: {where}got an empty parameter list; pass model.parameters() "
                         f"or a non-empty list of tensors")
    for j, p in enumerate(items):
        if not isinstance(p, Tensor):
            raise TypeError(f"{owner}: {where}parameter {j} is a {type(p).__name__}, not an "
                            f"ember Tensor")
        if not p.requires_grad:
            raise ValueError(f"{owner}: {where}parameter {j} (shape {p.shape}) does not require "
                             f"grad; pass only trainable tensors (requires_grad=True)")
    return items


def check_state_dict(owner: str, expected: dict[str, Any], given: dict[str, Any]) -> None:
    """Raise one ValueError listing every missing key, unexpected key and shape mismatch."""
    if not isinstance(given, dict):
        raise TypeError(f"{owner}.load_state_dict expects a dict of arrays, got "
                        f"{type(given).__name__}")
    problems = [f"missing key {k!r}" for k in expected if k not in given]
    problems += [f"unexpected key {k!r}" for k in given if k not in expected]
    for k, want in expected.items():
        if k in given:
            have = tuple(getattr(given[k], "shape", ()))
            if have != tuple(want.shape):
                problems.append(f"shape mismatch for {k!r}: the state_dict has {have}, this "
                                f"optimizer has {tuple(want.shape)}")
    if problems:
        raise ValueError(f"{owner}.load_state_dict: {len(problems)} problem(s) (was the state "
                         f"saved from an optimizer with other parameters or options?):\n  "
                         + "\n  ".join(problems))


def as_backend_array(value: Any, dtype: Any) -> Any:
    """``value`` as an array of the active backend with ``dtype``; arrays of the backend (JAX
    tracers included) are used as they are, only cast when their dtype differs."""
    bk = backend.get()
    if isinstance(value, Tensor):
        value = value.data
    if not bk.owns(value):
        return bk.asarray(value, dtype=dtype)
    return value if value.dtype == dtype else value.astype(dtype)


class Optimizer:
    """The base class: parameter groups, ``step``, ``zero_grad``, ``state_dict``, clipping.

    A subclass sets ``rule`` (a pure function from ``ember.optim.rules``), ``hyperparameters``
    (the group keys passed to the rule) and implements ``_init_state`` (the rule's state for one
    parameter, as arrays) and ``_check_hyperparameters`` (validation).

    Args:
        params: tensors to optimize, or a list of dicts (parameter groups) each with ``"params"``
            and any hyperparameter that overrides ``defaults`` for that group.
        defaults: the hyperparameters, ``lr`` included (a number, a schedule or any callable
            ``step -> lr``).
        clip_norm: if given, scale all gradients together so their global L2 norm is at most this
            before every update (``clip_grad_norm``; the ``.grad`` tensors are left as they are).
        clip_value: if given, clip every gradient element to ``[-clip_value, clip_value]`` (before
            ``clip_norm`` when both are given).

    Example (an optimizer that moves each parameter by ``lr`` against the gradient's sign):
        >>> import ember
        >>> def sign_descent(param, grad, state, lr, step):
        ...     return param - lr * ember.backend.get().xp.sign(grad), state
        >>> class SignSGD(ember.optim.Optimizer):
        ...     rule = staticmethod(sign_descent)
        ...     def __init__(self, params, lr):
        ...         super().__init__(params, {"lr": lr})
        >>> w = ember.tensor([1.0, -2.0], requires_grad=True)
        >>> opt = SignSGD([w], lr=0.5)
        >>> (w * w).sum().backward()
        >>> opt.step()
        >>> w.tolist()
        [0.5, -1.5]
    """

    rule: Callable[..., tuple[Any, dict[str, Any]]]
    hyperparameters: tuple[str, ...] = ()
    _implicit_group = False  # True while the constructor adds its one group of plain tensors

    def __init__(self, params: ParamsT, defaults: dict[str, Any], *,
                 clip_norm: float | None = None, clip_value: float | None = None) -> None:
        self.defaults = dict(defaults)
        self._check_group(self.defaults, "")
        for arg, value in (("clip_norm", clip_norm), ("clip_value", clip_value)):
            if value is not None and not (is_number(value) and value > 0):
                raise ValueError(f"{self._name}: {arg} must be > 0 or None, got {value!r}")
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}  # parameter number -> the rule's arrays
        self._params: list[Tensor] = []
        self._lr_dtypes: list[Any] = []
        self._step = backend.get().xp.zeros((), dtype=backend.int32)
        items: list[Any] = [params] if isinstance(params, Tensor) else list(params)
        if not items:
            raise ValueError(f"{self._name}: got an empty parameter list; pass "
                             f"model.parameters() or a non-empty list of tensors")
        if all(isinstance(item, dict) for item in items):
            for group in items:
                self.add_param_group(group)
        else:  # one group of plain tensors: errors need not name a group
            self._implicit_group = True
            self.add_param_group({"params": items})
            self._implicit_group = False

    @property
    def _name(self) -> str:
        return type(self).__name__

    # -- parameter groups ------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters, with hyperparameters overriding the defaults (PyTorch's).

        Example:
            >>> import ember
            >>> a, b = ember.zeros(2, requires_grad=True), ember.zeros(3, requires_grad=True)
            >>> opt = ember.optim.SGD([a], lr=0.1)
            >>> opt.add_param_group({"params": [b], "lr": 0.01})
            >>> [float(g["lr"]) for g in opt.param_groups]
            [0.10000000149011612, 0.009999999776482582]
        """
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError(f"{self._name}: a parameter group is a dict with a 'params' key, got "
                            f"{type(param_group).__name__}")
        gi = len(self.param_groups)
        where = "" if self._implicit_group else f"param group {gi}: "
        params = as_param_list(self._name, param_group["params"], where)
        owner = {id(p): k for k, g in enumerate(self.param_groups) for p in g["params"]}
        for j, p in enumerate(params):
            if id(p) in owner:
                other = "this group" if owner[id(p)] == gi else f"param group {owner[id(p)]}"
                raise ValueError(f"{self._name}: parameter {j} of param group {gi} (shape "
                                 f"{p.shape}) is already in {other}; a parameter may appear in "
                                 f"one group, once")
            owner[id(p)] = gi
        self._check_keys(param_group, where)
        group = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        self._check_group(group, where)
        lr = group["lr"]
        wide = any(p.dtype == backend.float64 for p in params)
        self._lr_dtypes.append(backend.float64 if wide else backend.float32)
        group = {"params": params, **group, "schedule": lr if callable(lr) else None}
        group["lr"] = self._schedule_lr(group, gi) if callable(lr) else self._lr_array(lr, gi)
        for p in params:
            self.state[len(self._params)] = self._new_state(p.data, group)
            self._params.append(p)
        self.param_groups.append(group)

    def set_lr(self, value: Any, group: int | None = None) -> None:
        """Set the learning rate of every group (or of group ``group``) for the next update.

        The rate is rebound as an array (a compiled step does not retrace). A schedule attached
        to the group still sets the rate after the next update.

        Example:
            >>> import ember
            >>> opt = ember.optim.SGD([ember.zeros(2, requires_grad=True)], lr=0.1)
            >>> opt.set_lr(0.5)
            >>> float(opt.param_groups[0]["lr"])
            0.5
        """
        check_lr(value, f"{self._name}.set_lr: lr")
        chosen = range(len(self.param_groups)) if group is None else [group]
        for gi in chosen:
            self.param_groups[gi]["lr"] = self._lr_array(value, gi)

    def set_schedule(self, schedule: Callable[[Any], Any] | None, group: int | None = None) -> None:
        """Drive the learning rate of every group (or of group ``group``) by ``schedule``.

        The schedule is evaluated at the optimizer's step count, so attaching it mid-run or after
        ``load_state_dict`` continues from the current step. ``None`` detaches it and keeps the
        current learning rate.

        Example:
            >>> import ember
            >>> from ember.optim import schedules
            >>> w = ember.zeros(2, requires_grad=True)
            >>> opt = ember.optim.SGD([w], lr=1.0)
            >>> opt.set_schedule(schedules.exponential_decay(1.0, gamma=0.5))
            >>> w.grad = ember.ones(2); opt.step(); opt.step()
            >>> float(opt.param_groups[0]["lr"]), w.tolist()
            (0.25, [-1.5, -1.5])
        """
        if schedule is not None and not callable(schedule):
            raise TypeError(f"{self._name}.set_schedule expects a callable step -> lr or None, "
                            f"got {type(schedule).__name__}")
        chosen = range(len(self.param_groups)) if group is None else [group]
        for gi in chosen:
            self.param_groups[gi]["schedule"] = schedule
            if schedule is not None:
                self.param_groups[gi]["lr"] = self._schedule_lr(self.param_groups[gi], gi)

    def _new_state(self, param: Any, group: dict[str, Any]) -> dict[str, Any]:
        """The rule's state; a float16/bfloat16 parameter also gets a float32 master copy, and
        its state is float32 (float16's eps-sized numbers underflow: Adam's eps is 0 there)."""
        if param.dtype.name not in _LOW_PRECISION:
            return self._init_state(param, group)
        master = param.astype(backend.float32)
        return {**self._init_state(master, group), "master": master}

    def _lr_array(self, value: Any, gi: int) -> Any:
        return as_backend_array(value, self._lr_dtypes[gi])

    def _schedule_lr(self, group: dict[str, Any], gi: int) -> Any:
        value = group["schedule"](self._step)
        check_lr(value, f"{self._name}: the schedule returned lr", allow_zero=True,
                 need="a finite number >= 0", where=lambda: f" at step {int(self._step)}",
                 message="{what}={got}{where}; a schedule's learning rate must be {need}")
        return self._lr_array(value, gi)

    # -- the update ------------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; parameters whose ``.grad`` is None are
        skipped. ``closure`` (optional) re-evaluates the loss; its result is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        grads = self._clipped([None if p.grad is None else p.grad.data for p in self._params])
        step = self._step + 1
        i = 0
        for gi, group in enumerate(self.param_groups):
            lr = self._lr_array(group["lr"], gi)
            hyper = {k: group[k] for k in self.hyperparameters}
            for p in group["params"]:
                if grads[i] is not None and "master" in self.state[i]:
                    p.data, self.state[i] = self._master_update(p.data, grads[i], self.state[i],
                                                                lr, step, hyper)
                elif grads[i] is not None:
                    data = p.data
                    p.data, self.state[i] = self.rule(data, grads[i], self.state[i],
                                                      lr.astype(data.dtype), step, **hyper)
                i += 1
        self._step = step
        for gi, group in enumerate(self.param_groups):
            if group["schedule"] is not None:  # the rate the next step will use
                group["lr"] = self._schedule_lr(group, gi)
        return loss

    def _master_update(self, data: Any, grad: Any, state: dict[str, Any], lr: Any, step: Any,
                       hyper: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The update of a low-precision parameter, computed in float32 on its master copy (a
        parameter changed from outside, e.g. by load_state_dict, replaces the copy)."""
        xp = backend.get().xp
        f32 = backend.float32
        master = xp.where(state["master"].astype(data.dtype) == data, state["master"],
                          data.astype(f32))
        rule_state = {k: v for k, v in state.items() if k != "master"}
        master, rule_state = self.rule(master, grad.astype(f32), rule_state, lr.astype(f32),
                                       step, **hyper)
        return master.astype(data.dtype), {**rule_state, "master": master}

    def _clipped(self, grads: list[Any]) -> list[Any]:
        if self.clip_value is None and self.clip_norm is None:
            return grads
        present = [g for g in grads if g is not None]
        if self.clip_value is not None:
            present = clip_arrays_by_value(present, float(self.clip_value))
        if self.clip_norm is not None:
            present, _ = clip_arrays_by_norm(present, float(self.clip_norm))
        it = iter(present)
        return [None if g is None else next(it) for g in grads]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: to None (the default, as PyTorch), or to zeros."""
        xp = backend.get().xp
        for p in self._params:
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor(xp.zeros_like(p.grad.data))

    # -- state -----------------------------------------------------------------------------------
    def params(self) -> list[Tensor]:
        """Every parameter, in group order (the numbering of :meth:`state_dict`).

        Example:
            >>> import ember
            >>> w = ember.zeros(2, requires_grad=True)
            >>> ember.optim.SGD([w], lr=0.1).params()[0] is w
            True
        """
        return self._params

    def state_arrays(self) -> list[Any]:
        """The state protocol (see :func:`ember.jit`): every array a step changes, in the order
        of :meth:`state_dict`; :meth:`bind` takes such a list back.

        Example:
            >>> import ember
            >>> opt = ember.optim.Adam([ember.zeros(2, requires_grad=True)])
            >>> len(opt.state_arrays())  # step, lr, exp_avg, exp_avg_sq
            4
            >>> opt.bind(opt.state_arrays())
        """
        out = [self._step]
        out += [self._lr_array(g["lr"], gi) for gi, g in enumerate(self.param_groups)]
        for arrays in self.state.values():
            out += arrays.values()
        return out

    def bind(self, arrays: list[Any]) -> None:
        """The state protocol: take a list made like :meth:`state_arrays` as the state, as it
        is (arrays or JAX tracers; nothing is copied or checked)."""
        self._step = arrays[0]
        k = 1
        for group in self.param_groups:
            group["lr"] = arrays[k]
            k += 1
        for i, old in self.state.items():
            self.state[i] = dict(zip(old, arrays[k:k + len(old)]))
            k += len(old)

    def state_dict(self) -> dict[str, Any]:
        """Every array the optimizer changes, as a flat ``name -> array`` dict.

        ``"step"`` (updates taken), ``"groups.<g>.lr"`` (the rate of the next update) and
        ``"state.<i>.<name>"`` (the rule's arrays for parameter ``i``, numbered in group order).

        Example:
            >>> import ember
            >>> opt = ember.optim.Adam([ember.zeros(2, requires_grad=True)])
            >>> list(opt.state_dict())
            ['step', 'groups.0.lr', 'state.0.exp_avg', 'state.0.exp_avg_sq']
        """
        out: dict[str, Any] = {"step": self._step}
        for gi, group in enumerate(self.param_groups):
            out[f"groups.{gi}.lr"] = self._lr_array(group["lr"], gi)
        for i, arrays in self.state.items():
            for name, array in arrays.items():
                out[f"state.{i}.{name}"] = array
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the arrays of ``state_dict`` (as made by :meth:`state_dict`) as the state.

        Keys and shapes are checked first, and every problem is reported in one ValueError.
        Arrays of the active backend are bound as they are (JAX tracers too); others are converted.
        """
        expected = self.state_dict()
        check_state_dict(self._name, expected, state_dict)
        self._step = as_backend_array(state_dict["step"], backend.int32)
        for gi, group in enumerate(self.param_groups):
            group["lr"] = self._lr_array(state_dict[f"groups.{gi}.lr"], gi)
        for i, arrays in self.state.items():
            self.state[i] = {name: as_backend_array(state_dict[f"state.{i}.{name}"], a.dtype)
                             for name, a in arrays.items()}

    def config(self) -> dict[str, Any]:
        """The hyperparameters, JSON-ready: what a checkpoint needs beside ``state_dict()``.

        Example:
            >>> import ember
            >>> opt = ember.optim.SGD([ember.zeros(2, requires_grad=True)], lr=0.5, momentum=0.9)
            >>> opt.config()["param_groups"][0]["momentum"]
            0.9
        """
        groups = []
        for group in self.param_groups:
            entry: dict[str, Any] = {"num_params": len(group["params"])}
            schedule = group["schedule"]
            if schedule is None:
                entry["lr"] = float(backend.get().to_numpy(group["lr"]))
            elif hasattr(schedule, "config"):
                entry["lr"] = schedule.config()
            else:
                entry["lr"] = {"name": "callable", "repr": repr(schedule)}
            for k, v in group.items():
                if k not in ("params", "lr", "schedule"):
                    entry[k] = list(v) if isinstance(v, tuple) else v
            groups.append(entry)
        return {"name": self._name, "clip_norm": self.clip_norm, "clip_value": self.clip_value,
                "param_groups": groups}

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return (f"{self._name}({hyper}; {len(self.param_groups)} group(s), "
                f"{len(self._params)} parameter(s))")

    # -- for subclasses --------------------------------------------------------------------------
    def _init_state(self, param: Any, group: dict[str, Any]) -> dict[str, Any]:
        """The rule's state for one parameter: arrays made now, never on the first step."""
        return {}

    def _check_hyperparameters(self, group: dict[str, Any], where: str) -> None:
        """Raise ValueError for a bad hyperparameter (``lr`` is checked by the base)."""

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        """The one validation of hyperparameters: known keys, a finite lr > 0, then the
        optimizer's own ranges (``_check_hyperparameters``)."""
        self._check_keys(group, where)
        lr: Any = group.get("lr")
        if not callable(lr):
            check_lr(lr, f"{self._name}: {where}lr")
        self._check_hyperparameters(group, where)

    def _check_keys(self, group: dict[str, Any], where: str) -> None:
        known = set(getattr(self, "defaults", group)) | {"params"}
        for key in group:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(f"{self._name}: {where}unknown key {key!r}; {hint}a param group "
                                 f"takes: {', '.join(sorted(known))}")

    def _require(self, ok: bool, where: str, arg: str, need: str, value: Any) -> None:
        if not ok:
            raise ValueError(f"{self._name}: {where}{arg} must be {need}, got {value!r}")

    def _check_range(self, group: dict[str, Any], where: str, arg: str, low: float,
                     high: float | None = None, low_open: bool = False) -> None:
        """``group[arg]`` must be a number >= low (> low if ``low_open``) and < high."""
        value = group[arg]
        ok = is_number(value) and math.isfinite(value) and (
            value > low if low_open else value >= low)
        if ok and high is not None:
            ok = value < high
        need = (f"in [{low:g}, {high:g})" if high is not None
                else f"a finite number > {low:g}" if low_open else f"a finite number >= {low:g}")
        self._require(ok, where, arg, need, value)
