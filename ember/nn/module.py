"""Module: the PyTorch module contract on ember tensors (Parameter lives in parameter.py).

A :class:`Module` registers :class:`Parameter` s, buffers and child modules when they are assigned
as attributes, in insertion order. Parameter paths are dotted (``"0.weight"``) and
``named_parameters()`` walks the tree depth first, so the order is deterministic.

State that a compiled step changes is arrays held by tensors: a parameter's ``.data`` and a
buffer's ``.data``. Optimizers and ``ember.jit`` rebind ``.data``; they never replace the objects,
and assigning to a buffer attribute (``self.running_mean = new``) rebinds the ``.data`` of the
buffer tensor that is already registered, so a list of state tensors taken once stays valid.

Example:
    >>> import ember
    >>> from ember import nn
    >>> class Affine(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = nn.Parameter(ember.ones(2))
    ...         self.register_buffer("calls", ember.zeros((), dtype=ember.int64))
    ...     def forward(self, x):
    ...         self.calls = self.calls.data + 1
    ...         return x * self.scale
    >>> m = Affine()
    >>> m(ember.tensor([1.0, 2.0])).tolist(), int(m.calls)
    ([1.0, 2.0], 1)
    >>> list(m.state_dict())
    ['scale', 'calls']
"""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from ember import backend
from ember.nn.parameter import Parameter, _rebuild_parameter  # noqa: F401  (old pickles)
from ember.tensor import Tensor, as_array

__all__ = ["Module", "Parameter", "IncompatibleKeys", "RemovableHandle"]


# -- helpers ---------------------------------------------------------------------------------------

class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class RemovableHandle:
    """Returned by ``register_forward_hook``; ``remove()`` detaches the hook."""

    def __init__(self, hooks: dict[int, Any], hook_id: int, module: Module) -> None:
        self._hooks = hooks
        self._id = hook_id
        self._module = weakref.ref(module)

    def remove(self) -> None:
        self._hooks.pop(self._id, None)
        module = self._module()
        if module is not None and not self._hooks:
            object.__setattr__(module, "_forward_hooks", None)


_hook_ids = iter(range(1 << 62))

# The outermost module being called: error messages give layer paths as seen from it.
_calling_root: Module | None = None


def _array_of(value: Any) -> Any:
    return value.data if isinstance(value, Tensor) else as_array(value)


# -- Module ----------------------------------------------------------------------------------------

#: bumped whenever any module registers or removes a parameter, buffer or child module, so that
#: a cached walk of a model (ember.jit's state slots) knows when it is stale
_STRUCTURE = [0]


def structure_version() -> int:
    """A counter that changes whenever any module's parameters, buffers or children change."""
    return _STRUCTURE[0]


class _NoAttributeError(AttributeError):
    """An unknown attribute; the "did you mean" hint is computed only if the message is read, so
    that ``hasattr(module, name)`` probes (frequent in other libraries) stay cheap."""

    def __init__(self, module: Module, name: str) -> None:
        super().__init__(name)
        self.module, self.attr = module, name

    def __str__(self) -> str:
        m, d = self.module, self.module.__dict__
        known = [*dir(type(m)), *d, *d["_parameters"], *d["_buffers"], *d["_modules"]]
        close = difflib.get_close_matches(self.attr,
                                          [k for k in known if not k.startswith("__")], 1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{type(m).__name__} has no attribute {self.attr!r}{hint}"


class Module:
    """Base class of every layer and model: subclass it, assign parts in ``__init__``, write
    ``forward``.

    Parameters, buffers and child modules are registered by attribute assignment. ``training``
    switches Dropout and BatchNorm (``train()`` / ``eval()``). Calling the module runs ``forward``;
    the first call of the outermost module also draws any lazy parameters.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> class Net(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc = nn.Linear(2, 1)
        ...     def forward(self, x):
        ...         return self.fc(x).sigmoid()
        >>> [name for name, _ in Net().named_parameters()]
        ['fc.weight', 'fc.bias']
    """

    training: bool
    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, Tensor | None]
    _modules: dict[str, Module | None]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        from ember.nn import registry  # records constructor arguments for ember.save(model)

        registry.record_init(cls)

    def __init__(self) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "training", True)
        setattr_(self, "_parameters", {})
        setattr_(self, "_buffers", {})
        setattr_(self, "_non_persistent", set())
        setattr_(self, "_modules", {})
        setattr_(self, "_parent", None)
        setattr_(self, "_name", "")
        setattr_(self, "_forward_hooks", None)
        setattr_(self, "_has_lazy", False)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation: subclasses define it; call the module, ``model(x)``, to run it."""
        raise NotImplementedError(f"{type(self).__name__} must define forward(self, ...)")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        global _calling_root
        if _calling_root is None:
            _calling_root = self
            try:
                if self._has_lazy:
                    self.materialize()
                out = self.forward(*args, **kwargs)
            finally:
                _calling_root = None
        else:
            out = self.forward(*args, **kwargs)
        if self._forward_hooks is not None:  # the one test on the hot path (Monitor, summary)
            for hook in list(self._forward_hooks.values()):
                result = hook(self, args, out)
                if result is not None:
                    out = result
        return out

    # -- registration ------------------------------------------------------------------------------
    def _check_init(self, name: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() ran: call super().__init__() "
                f"first in {type(self).__name__}.__init__"
            )

    def _unregister(self, name: str, keep: dict[str, Any] | None = None) -> None:
        # ``keep``: the registry the name is re-registered in, where it keeps its position
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not keep:
                registry.pop(name, None)
        self._non_persistent.discard(name)
        self.__dict__.pop(name, None)
        _STRUCTURE[0] += 1

    def _mark_lazy(self) -> None:
        module: Module | None = self
        while module is not None and not module._has_lazy:
            object.__setattr__(module, "_has_lazy", True)
            module = module._parent() if module._parent is not None else None

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self.add_module(name, value)
        elif name in self.__dict__.get("_parameters", ()):
            if value is not None:
                raise TypeError(
                    f"cannot assign a {type(value).__name__} to parameter {name!r} of "
                    f"{type(self).__name__}: assign an nn.Parameter or None (to change the "
                    f"values, rebind .data: module.{name}.data = new_array)"
                )
            self._parameters[name] = None
            _STRUCTURE[0] += 1
        elif name in self.__dict__.get("_buffers", ()):
            self._assign_buffer(name, value)
        elif name in self.__dict__.get("_modules", ()):
            if value is not None:
                raise TypeError(
                    f"cannot assign a {type(value).__name__} to submodule {name!r} of "
                    f"{type(self).__name__}: assign an nn.Module or None"
                )
            self._modules[name] = None
            _STRUCTURE[0] += 1
        else:
            object.__setattr__(self, name, value)

    def _assign_buffer(self, name: str, value: Any) -> None:
        current = self._buffers[name]
        if value is None:
            self._buffers[name] = None
            _STRUCTURE[0] += 1
        elif current is None:
            self._buffers[name] = Tensor._make(_array_of(value), False, None)
            _STRUCTURE[0] += 1
        else:  # keep the tensor, rebind its array: a cached list of state tensors stays valid
            current.data = _array_of(value)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(
                f"{type(self).__name__} has no attribute {name!r}: its __init__ must call "
                f"super().__init__() before anything else"
            )
        params = d["_parameters"]
        if name in params:
            p = params[name]
            if isinstance(p, Parameter) and p._lazy is not None:
                p.materialize()
            return p
        if name in d["_buffers"]:
            return d["_buffers"][name]
        if name in d["_modules"]:
            return d["_modules"][name]
        if name.startswith("__"):  # protocol probes (copy, pickle, NumPy): no hint to compute
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        raise _NoAttributeError(self, name)

    def __delattr__(self, name: str) -> None:
        if name in self._parameters or name in self._buffers or name in self._modules:
            self._unregister(name)
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` under ``name`` (what ``self.name = param`` does).

        Example:
            >>> import ember
            >>> from ember import nn
            >>> m = nn.Module()
            >>> m.register_parameter("w", nn.Parameter(ember.ones(1)))
            >>> [n for n, _ in m.named_parameters()]
            ['w']
        """
        self._check_init(name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter({name!r}): expected an nn.Parameter or None, "
                            f"got {type(param).__name__}")
        _check_name(self, name)
        self._unregister(name, keep=self._parameters)
        self._parameters[name] = param
        _STRUCTURE[0] += 1
        if param is not None:
            param._set_owner(self, name)
            if param._lazy is not None:
                self._mark_lazy()

    def register_buffer(self, name: str, value: Any, persistent: bool = True) -> None:
        """Register state that is not trained (running statistics, a random key).

        The value (a Tensor, array or None) is kept in a tensor that never requires grad; later
        assignments ``self.name = new_value`` rebind that tensor's ``.data``. Persistent buffers
        are part of ``state_dict()``.

        Example:
            >>> import ember
            >>> from ember import nn
            >>> m = nn.Module()
            >>> m.register_buffer("count", ember.zeros(()))
            >>> m.count = m.count + 1
            >>> float(m.count), list(m.state_dict())
            (1.0, ['count'])
        """
        self._check_init(name)
        _check_name(self, name)
        self._unregister(name, keep=self._buffers)
        self._buffers[name] = None if value is None else Tensor._make(_array_of(value), False,
                                                                        None)
        _STRUCTURE[0] += 1
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a child module under ``name`` (what ``self.name = module`` does).

        Example:
            >>> from ember import nn
            >>> m = nn.Module()
            >>> m.add_module("act", nn.ReLU())
            >>> m
            Module(
              (act): ReLU()
            )
        """
        self._check_init(name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}): expected an nn.Module, got "
                            f"{type(module).__name__}")
        _check_name(self, name)
        self._unregister(name, keep=self._modules)
        self._modules[name] = module
        _STRUCTURE[0] += 1
        if module is not None:
            module._set_parent(self, name)
            if module._has_lazy:
                self._mark_lazy()

    register_module = add_module

    def _set_parent(self, parent: Module, name: str) -> None:
        # The first live parent names the module: a later container holding the same module (a
        # slice model[:2], a second model sharing a layer) does not change its parameters' keys.
        current = self._parent() if self._parent is not None else None
        if current is None and parent is not self:
            object.__setattr__(self, "_parent", weakref.ref(parent))
            object.__setattr__(self, "_name", name)

    def _path_prefix(self) -> str:
        """``"a.b."`` for a module at path ``a.b`` of the outermost module ("" for the root)."""
        names: list[str] = []
        module: Module | None = self
        seen: set[int] = set()
        while module is not None and id(module) not in seen:
            seen.add(id(module))
            parent = module._parent() if module._parent is not None else None
            if parent is None:
                break
            names.append(module._name)
            module = parent
        return "".join(n + "." for n in reversed(names))

    # -- traversal ---------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """``(path, module)`` for this module and every descendant, depth first, each once.

        Example:
            >>> from ember import nn
            >>> [n for n, _ in nn.Sequential(nn.Linear(1, 1), nn.ReLU()).named_modules()]
            ['', '0', '1']
        """
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            path, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield path, module
            children = [(f"{path}.{n}" if path else n, m)
                        for n, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def get_submodule(self, target: str) -> Module:
        """The descendant at the dotted path ``target`` ("" is this module).

        Example:
            >>> from ember import nn
            >>> nn.Sequential(nn.Linear(1, 1), nn.ReLU()).get_submodule("1")
            ReLU()
        """
        module: Module = self
        walked: list[str] = []
        for name in target.split(".") if target else []:
            child = module._modules.get(name)
            if child is None:
                where = ".".join(walked) or "the model"
                raise AttributeError(f"{type(module).__name__} at {where!r} has no submodule "
                                     f"{name!r}; its children: {list(module._modules)}")
            walked.append(name)
            module = child
        return module

    def modules(self) -> Iterator[Module]:
        """This module and every descendant."""
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """``(name, module)`` for the direct children."""
        seen: set[int] = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        """The direct child modules.

        Example:
            >>> from ember import nn
            >>> list(nn.Sequential(nn.ReLU(), nn.Tanh()).children())
            [ReLU(), Tanh()]
        """
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True
                         ) -> Iterator[tuple[str, Parameter]]:
        """``(path, parameter)`` pairs in registration order, depth first, each parameter once.

        Lazy parameters are drawn here (keyed by their path in the outermost module).

        Example:
            >>> from ember import nn
            >>> [n for n, _ in nn.Sequential(nn.Linear(1, 2), nn.Linear(2, 1)).named_parameters()]
            ['0.weight', '0.bias', '1.weight', '1.bias']
        """
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for path, module in mods:
            for name, p in module._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                if isinstance(p, Parameter) and p._lazy is not None:
                    p.materialize()
                yield (f"{path}.{name}" if path else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter, in the order of :meth:`named_parameters`.

        Example:
            >>> from ember import nn
            >>> [p.shape for p in nn.Linear(2, 3).parameters()]
            [(3, 2), (3,)]
        """
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True
                      ) -> Iterator[tuple[str, Tensor]]:
        """``(path, buffer)`` pairs (the tensors holding the buffers), depth first.

        Example:
            >>> from ember import nn
            >>> [n for n, _ in nn.BatchNorm1d(3).named_buffers()]
            ['running_mean', 'running_var', 'num_batches_tracked']
        """
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for path, module in mods:
            for name, b in module._buffers.items():
                if b is None or id(b) in seen:
                    continue
                seen.add(id(b))
                yield (f"{path}.{name}" if path else name), b

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every buffer tensor."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def state_arrays(self) -> list[Any]:
        """The state protocol (see :func:`ember.jit`): the arrays of every parameter, then of
        every buffer; :meth:`bind` takes such a list back (gradients are not part of it).

        Example:
            >>> from ember import nn
            >>> layer = nn.Linear(2, 3)
            >>> [a.shape for a in layer.state_arrays()]
            [(3, 2), (3,)]
            >>> layer.bind(layer.state_arrays())
        """
        return [t.data for t in (*self.parameters(), *self.buffers())]

    def bind(self, arrays: list[Any]) -> None:
        """The state protocol: rebind every parameter's and buffer's ``.data`` to ``arrays``."""
        for t, a in zip((*self.parameters(), *self.buffers()), arrays, strict=True):
            t.data = a

    def materialize(self) -> Module:
        """Draw every lazy parameter now (normally done on first use); returns ``self``."""
        for _ in self.named_parameters():  # draws as it goes
            pass
        for _, m in self.named_modules():
            object.__setattr__(m, "_has_lazy", False)
        return self

    # -- state -------------------------------------------------------------------------------------
    def _state_tensors(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for path, module in self.named_modules():
            pre = f"{path}." if path else ""
            for name, p in module._parameters.items():
                if p is not None:
                    out.setdefault(pre + name, p)
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    out.setdefault(pre + name, b)
        return out

    def state_dict(self) -> dict[str, Any]:
        """A flat ``path -> array`` map of every parameter and persistent buffer.

        The arrays are the backend's (shared, not copied: ember never mutates an array in place).

        Example:
            >>> from ember import nn
            >>> {k: v.shape for k, v in nn.Linear(2, 3).state_dict().items()}
            {'weight': (3, 2), 'bias': (3,)}
        """
        tensors = self._state_tensors()
        for t in tensors.values():
            if isinstance(t, Parameter):
                t.materialize()
        return {k: t.data for k, t in tensors.items()}

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values from a ``path -> array`` map into the parameters and buffers.

        Raises one RuntimeError listing every missing key and unexpected key (when ``strict``)
        and every shape mismatch (always); nothing is loaded then.

        Example:
            >>> from ember import nn
            >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
            >>> b.load_state_dict(a.state_dict())
            IncompatibleKeys(missing_keys=[], unexpected_keys=[])
        """
        own = self._state_tensors()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = _load_problems(own, state_dict, missing if strict else [],
                                  unexpected if strict else [])
        if problems:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n  "
                + "\n  ".join(problems)
                + ("\n  (pass strict=False to load the matching keys only)"
                   if strict and (missing or unexpected) else "")
            )
        for k, t in own.items():
            if k in state_dict:
                value = as_array(state_dict[k])  # a Tensor, a NumPy or JAX array, lists
                dtype = t.dtype
                if isinstance(t, Parameter):
                    t._lazy = None  # loaded values replace a lazy parameter's draw
                t.data = value.astype(dtype) if value.dtype != dtype else value
        return IncompatibleKeys(missing, unexpected)

    # -- modes, gradients, dtype -------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Switch this module and its descendants to training mode (or eval with ``mode=False``).

        Example:
            >>> from ember import nn
            >>> m = nn.Sequential(nn.Dropout(0.5)).eval()
            >>> m.training, m[0].training
            (False, False)
        """
        for _, m in self.named_modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Switch to evaluation mode: ``train(False)``; returns ``self``.

        Example:
            >>> from ember import nn
            >>> nn.Dropout(0.5).eval().training
            False
        """
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every parameter (to None, or to zeros).

        Example:
            >>> import ember
            >>> from ember import nn
            >>> m = nn.Linear(2, 1)
            >>> m(ember.ones(1, 2)).sum().backward()
            >>> m.zero_grad()
            >>> m.weight.grad is None
            True
        """
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor._make(backend.get().xp.zeros_like(p.grad.data), False, None)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter; returns ``self``.

        Example:
            >>> from ember import nn
            >>> m = nn.Linear(2, 2).requires_grad_(False)
            >>> [p.requires_grad for p in m.parameters()]
            [False, False]
        """
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, dtype: Any) -> Module:
        """Convert every floating point parameter and buffer to ``dtype``; returns ``self``.

        Example:
            >>> import ember
            >>> from ember import nn
            >>> nn.Linear(2, 2).to(ember.float64).weight.dtype
            dtype('float64')
        """
        dt = backend.as_dtype(dtype)
        for t in [*self.parameters(), *self.buffers()]:
            if t.dtype.kind == "f" and t.dtype != dt:
                t.data = t.data.astype(dt)
                if t.grad is not None:
                    t.grad = Tensor._make(t.grad.data.astype(dt), False, None)
        return self

    def double(self) -> Module:
        """``to(ember.float64)``."""
        return self.to(backend.float64)

    def float(self) -> Module:
        """``to(ember.float32)``."""
        return self.to(backend.float32)

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every descendant and then on this module; returns ``self``.

        Example:
            >>> from ember import nn
            >>> names = []
            >>> _ = nn.Sequential(nn.ReLU()).apply(lambda m: names.append(type(m).__name__))
            >>> names
            ['ReLU', 'Sequential']
        """
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def register_forward_hook(self, hook: Callable[[Module, tuple[Any, ...], Any], Any]
                              ) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after every forward; it may return a new output.

        Example:
            >>> import ember
            >>> from ember import nn
            >>> seen = []
            >>> m = nn.ReLU()
            >>> handle = m.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
            >>> _ = m(ember.zeros(3)); handle.remove(); _ = m(ember.zeros(2))
            >>> seen
            [(3,)]
        """
        if self._forward_hooks is None:
            object.__setattr__(self, "_forward_hooks", {})
        hook_id = next(_hook_ids)
        self._forward_hooks[hook_id] = hook
        return RemovableHandle(self._forward_hooks, hook_id, self)

    # -- errors ------------------------------------------------------------------------------------
    def path(self) -> str:
        """This module's path for messages: ``model`` for the outermost, ``model.2`` below it.

        It is seen from the outermost module being called when there is one, else from the
        parent links set at registration.
        """
        root = _calling_root
        if root is not None:
            for name, m in root.named_modules():
                if m is self:
                    return f"model.{name}" if name else "model"
        prefix = self._path_prefix()
        return "model." + prefix[:-1] if prefix else "model"

    def describe(self) -> str:
        """A short label for error messages, e.g. ``Linear 64->10`` (the class name here)."""
        return type(self).__name__

    def shape_error(self, expected: str, got: tuple[int, ...]) -> ValueError:
        """The error for a bad input: ``model.2 (Linear 64->10): expected input ..., got ...``.

        Layers raise it from ``forward``; ``describe()`` gives the label in parentheses.

        Example:
            >>> from ember import nn
            >>> nn.Linear(64, 10).shape_error("(..., 64)", (32, 63))
            ValueError('model (Linear 64->10): expected input (..., 64), got (32, 63)')
        """
        return ValueError(f"{self.path()} ({self.describe()}): expected input {expected}, "
                          f"got {tuple(got)}")

    # -- printing ----------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr line."""
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._parameters, *self._buffers, *self._modules})

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_parent"] = None  # weak links are rebuilt by the parent's __setstate__
        state["_forward_hooks"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for name, m in self._modules.items():
            if m is not None:
                m._set_parent(self, name)
        for name, p in self._parameters.items():
            if p is not None:
                p._set_owner(self, name)


def _load_problems(own: dict[str, Tensor], state_dict: dict[str, Any], missing: list[str],
                   unexpected: list[str]) -> list[str]:
    """The lines of ``load_state_dict``'s error: missing and unexpected keys (as given), then
    every shape mismatch."""
    mismatched = []
    for k, t in own.items():
        if k in state_dict:
            got = tuple(as_array(state_dict[k]).shape)
            if got != tuple(t.shape):
                mismatched.append(f"{k!r}: checkpoint {got}, model {tuple(t.shape)}")
    problems = []
    if missing:
        problems.append("missing keys: " + ", ".join(repr(k) for k in missing))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(repr(k) for k in unexpected))
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched))
    return problems


def _check_name(module: Module, name: str) -> None:
    if not isinstance(name, str) or not name or "." in name:
        raise KeyError(f"{type(module).__name__}: a parameter, buffer or module name must be a "
                       f"non-empty string without '.', got {name!r}")
    if hasattr(type(module), name):
        raise KeyError(f"{type(module).__name__}: {name!r} is already a class attribute; choose "
                       f"another name")
