"""``ember.jit``: compile ordinary ember code (forward, backward, ``opt.step()``) with XLA.

Everything a training step changes is an array reachable from the modules, optimizers and tensors
passed to the function: parameters and their gradients, buffers (BatchNorm statistics, dropout
keys), optimizer state (moments, step count, learning rate) and ember's random stream. ``jit``
gathers those arrays, hands them to ``jax.jit`` as inputs, binds the traced arrays back into the
objects, runs the function (ember's own autograd included), and returns the new arrays as outputs,
which are bound back into the objects after the call. The list of state slots is built once per
argument structure and cached; the function retraces only when the structure, shapes, dtypes or
static Python values change (``trace_count`` counts the traces).

State captured by closure instead of passed as an argument would be frozen into the compiled code:
pass modules and optimizers as arguments. Python numbers and strings among the arguments are
static (a new value retraces); pass values that change every call as tensors or arrays.

On the NumPy backend ``jit`` runs the function eagerly, unchanged (``trace_count`` stays 0).

Data parallelism: ``jit(fn, mesh=mesh)`` (or calling under ``jax.set_mesh(mesh)``) replicates the
state and the outputs over the devices of ``mesh`` and keeps the sharding of array arguments that
already lie on it, such as a batch split with :func:`ember.distributed.shard_batch`; XLA inserts the
gradient all-reduce (see :mod:`ember.distributed`).

Example:
    >>> import ember
    >>> w = ember.tensor([1.0, 2.0], requires_grad=True)
    >>> @ember.jit
    ... def step(w, x):
    ...     loss = ((w * x).sum() - 1.0) ** 2
    ...     w.grad = None
    ...     loss.backward()
    ...     w.data = w.data - 0.1 * w.grad.data
    ...     return loss
    >>> round(step(w, ember.tensor([1.0, 1.0])).item(), 4)
    4.0
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from ember import backend
from ember import random as _random  # the random stream offers the state protocol itself
from ember.tensor import Tensor

__all__ = ["jit", "JitFunction", "StateSlots", "state_slots"]


_CONTAINERS = frozenset((tuple, list, dict))


class _Slot:
    """One place that holds state: ``get()`` reads its arrays, ``set(value)`` rebinds them."""

    def get(self) -> Any:
        raise NotImplementedError

    def set(self, value: Any) -> None:
        raise NotImplementedError


class _DataSlot(_Slot):
    """A tensor's ``.data`` (parameters, buffers, tensors that require grad)."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor

    def get(self) -> Any:
        return self.tensor.data

    def set(self, value: Any) -> None:
        self.tensor.data = value


class _GradSlot(_Slot):
    """A tensor's ``.grad`` (None or an array), so that accumulation across calls is carried."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor

    def get(self) -> Any:
        g = self.tensor.grad
        return None if g is None else g.data

    def set(self, value: Any) -> None:
        self.tensor.grad = None if value is None else Tensor._make(value, False, None)


class _StateSlot(_Slot):
    """An object's arrays through the state protocol: ``state_arrays()`` reads them as a list,
    ``bind(arrays)`` rebinds them (optimizers, ember's random stream, any object offering it)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def get(self) -> Any:
        return self.obj.state_arrays()

    def set(self, value: Any) -> None:
        self.obj.bind(value)


def _unshared(state: list[Any]) -> list[Any]:
    """Copy arrays that occur twice (e.g. one gradient shared by two tensors): XLA cannot donate
    the same buffer for two inputs."""
    import jax
    import jax.numpy as jnp

    flat: list[Any] = []
    for x in state:
        if type(x) is list:  # an object's state_arrays()
            flat += x
        elif x is not None:
            flat.append(x)
    if len({id(x) for x in flat}) == len(flat):
        return state  # no array occurs twice: nothing to copy
    seen: set[int] = set()

    def once(x: Any) -> Any:
        if id(x) in seen:
            return jnp.array(x, copy=True)
        seen.add(id(x))
        return x

    return jax.tree_util.tree_map(once, state)


@functools.cache
def _kinds() -> tuple[Any, Any]:
    from ember.nn.module import Module
    from ember.optim.optimizer import Optimizer

    return Module, Optimizer


class _Group:
    """What one argument structure compiles to: its state slots, which gradients the step reads
    before writing them (found once, by tracing it abstractly, at the first call that has
    gradients), and one compiled entry per pattern of those gradients being None or arrays."""

    __slots__ = ("slots", "grads", "read", "entries")

    def __init__(self, slots: list[_Slot]) -> None:
        self.slots = slots
        self.grads = [s for s in slots if isinstance(s, _GradSlot)]
        self.read: list[_GradSlot] | None = None  # not known yet
        self.entries: dict[tuple[bool, ...], _Entry] = {}


class _Entry:
    """One compiled program: the slots whose arrays are its inputs (every state slot except the
    gradients the step does not read, and those that are None) and its output structure."""

    __slots__ = ("slots", "inputs", "cleared", "compiled", "out_tree", "tensor_out")

    def __init__(self, slots: list[_Slot], inputs: list[_Slot]) -> None:
        self.slots = slots
        self.inputs = inputs
        kept = {id(s) for s in inputs}
        self.cleared = [s for s in slots if id(s) not in kept]  # gradients bound to None
        self.compiled: Any = None
        self.out_tree: Any = None
        self.tensor_out: Any = []


class JitFunction:
    """A compiled ember function (see :func:`jit`): call it like the function.

    Example:
        >>> import ember
        >>> inc = ember.jit(lambda x: x + 1)
        >>> type(inc).__name__, inc(ember.ones(2)).tolist(), inc.trace_count  # NumPy: eager
        ('JitFunction', [2.0, 2.0], 0)
    """

    def __init__(self, fn: Callable[..., Any], donate: bool = True, mesh: Any = None,
                 checked: bool = False) -> None:
        self.fn = fn
        self.checked = bool(checked)
        self.donate = donate and not self.checked  # a failed check keeps the old state
        if mesh is not None and self.checked:
            raise ValueError(f"ember.jit({getattr(fn, '__name__', 'fn')}): checked=True does not "
                             f"combine with mesh=; check the indices on one device first")
        if mesh is not None:
            from ember.distributed import auto_axes, make_mesh

            if type(mesh).__name__ == "Mesh":  # any axes; Explicit ones become Auto
                mesh = auto_axes(mesh)
            else:  # "all", a number, a list of devices
                mesh = make_mesh(mesh, owner="ember.jit", arg="mesh")
        self.mesh = mesh
        self.trace_count = 0
        self._cache: dict[Any, _Group] = {}
        self._walks: dict[int, Any] = {}
        self._probing = False
        functools.update_wrapper(self, fn)

    def clear_cache(self) -> None:
        """Forget every compiled version (the next call traces again)."""
        self._cache.clear()

    def lower(self, *args: Any, **kwargs: Any) -> Any:
        """The ``jax.stages.Lowered`` program for these arguments, without running it (JAX
        backend): ``.as_text()`` is the program, ``.compile().as_text()`` what XLA made of it
        (e.g. the all-reduce a mesh adds). The objects' state is left as it was.

        Example:
            >>> import ember
            >>> ember.set_backend("jax")
            >>> double = ember.jit(lambda x: x * 2)
            >>> "multiply" in double.lower(ember.ones(3)).as_text()
            True
            >>> ember.set_backend("numpy")
        """
        if backend.get().name != "jax":
            raise RuntimeError("JitFunction.lower needs the JAX backend: "
                               "ember.set_backend(\"jax\")")
        mesh = self.mesh if self.mesh is not None else _context_mesh()
        entry, state, inputs = self._entry(args, kwargs, mesh)
        if mesh is not None:
            state, inputs = _placed(mesh, state), _placed(mesh, inputs)
        return entry.compiled.lower(state, inputs)

    # -- the argument structure ------------------------------------------------------------------
    def _flatten(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, list[Any]]:
        import jax

        # Tensors, Modules and Optimizers are not registered pytree nodes: they are leaves
        return jax.tree_util.tree_flatten((args, kwargs))

    def _walk(self, module: Any) -> list[Any]:
        """A module's submodules, walked once per structure version."""
        from ember.nn.module import structure_version

        cached = self._walks.get(id(module))
        if cached is None or cached[0] != structure_version():
            cached = (structure_version(), list(module.modules()))
            self._walks[id(module)] = cached
        return cached[1]

    def _prepare(self, leaves: Any) -> tuple[tuple[Any, ...], list[Any]]:
        """The cache key of one call (structure, shapes, dtypes, static values, train/eval
        flags) and its array inputs, in one pass over the arguments."""
        module_cls, opt_cls = _kinds()
        key: list[Any] = []
        inputs: list[Any] = []
        for leaf in leaves:
            if isinstance(leaf, Tensor):
                data = leaf.data
                if leaf.requires_grad:  # a stateful tensor: its arrays are slots
                    key.append((id(leaf), data.shape, data.dtype))
                    inputs.append(None)
                else:
                    key.append((data.shape, data.dtype))
                    inputs.append(data)
            elif isinstance(leaf, module_cls):
                key.append((id(leaf), tuple([m.training for m in self._walk(leaf)])))
                inputs.append(None)
            elif isinstance(leaf, opt_cls):
                key.append(id(leaf))
                inputs.append(None)
            elif hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
                key.append((tuple(leaf.shape), leaf.dtype))
                inputs.append(leaf)
            else:
                try:
                    hash(leaf)
                except TypeError:
                    raise TypeError(
                        f"ember.jit: an argument of type {type(leaf).__name__} is neither a "
                        f"Module, an Optimizer, a Tensor, an array nor a hashable Python value"
                    ) from None
                key.append((type(leaf), leaf))
                inputs.append(None)
        return tuple(key), inputs

    @staticmethod
    def _slots(leaves: list[Any], grads: bool = True, random: bool = True) -> list[_Slot]:
        """Every state slot reachable from the arguments, each tensor once, in a fixed order:
        the random stream, each tensor's data and gradient, then each optimizer's state."""
        module_cls, opt_cls = _kinds()
        slots: list[_Slot] = [_StateSlot(_random)] if random else []
        seen: set[int] = set()

        def add_tensors(tensors: Any, grad: bool) -> None:
            for t in tensors:
                if t is not None and id(t) not in seen:
                    seen.add(id(t))
                    slots.extend([_DataSlot(t), _GradSlot(t)] if grad and grads
                                 else [_DataSlot(t)])

        for leaf in leaves:
            if isinstance(leaf, module_cls):
                add_tensors(leaf.parameters(), True)
                add_tensors(leaf.buffers(), False)
            elif isinstance(leaf, opt_cls):
                add_tensors(leaf.params(), True)
        for leaf in leaves:  # optimizer state after the tensors it updates
            if isinstance(leaf, opt_cls):
                slots.append(_StateSlot(leaf))
            elif isinstance(leaf, Tensor) and leaf.requires_grad:
                add_tensors([leaf], True)
        return slots

    # -- calling ---------------------------------------------------------------------------------
    def _entry(self, args: tuple[Any, ...], kwargs: dict[str, Any],
               mesh: Any) -> tuple[_Entry, list[Any], list[Any]]:
        """The compiled entry for these arguments (tracing it if new), the state it takes and
        the array inputs."""
        from ember.nn.module import structure_version

        treedef: Any
        if kwargs or not _CONTAINERS.isdisjoint(map(type, args)):
            leaves, treedef = self._flatten(args, kwargs)
        else:  # the common case, flat positional arguments: no pytree walk
            leaves, treedef = list(args), len(args)
        sig, inputs = self._prepare(leaves)
        layouts: Any = None
        if mesh is None:
            key: Any = (treedef, structure_version(), sig)
        else:
            layouts = _layouts(mesh, inputs)
            key = (treedef, structure_version(), sig, mesh, layouts)
        group = self._cache.get(key)
        if group is None:
            group = self._cache[key] = _Group(self._slots(leaves))
        if group.read is None and any(s.tensor.grad is not None for s in group.grads):
            # the first call with gradients present: find which of them the step reads (while
            # every gradient is None there is nothing to carry and nothing to find out)
            group.read = self._read_gradients(group.slots, treedef, leaves, inputs)
        present = tuple([slot.tensor.grad is not None for slot in group.read or ()])
        entry = group.entries.get(present)
        if entry is None:
            passed = {id(s) for s, there in zip(group.read or (), present) if there}
            ins = [s for s in group.slots if not isinstance(s, _GradSlot) or id(s) in passed]
            entry = group.entries[present] = _Entry(group.slots, ins)
            entry.compiled = self._compile(entry, treedef, leaves, mesh, layouts)
        return entry, [slot.get() for slot in entry.inputs], inputs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if backend.get().name != "jax":
            return self.fn(*args, **kwargs)
        mesh = self.mesh
        if mesh is None and _abstract_mesh() is not _NO_MESH:  # under jax.set_mesh(...)?
            mesh = _context_mesh()
        entry, state, inputs = self._entry(args, kwargs, mesh)
        if self.donate:
            state = _unshared(state)
        if mesh is None:
            result = entry.compiled(state, inputs)
            if self.checked:
                _raise_index_error(self.fn, result[0])
                result = result[1]
            out_leaves, new_state = result
        else:
            out_leaves, new_state = _call_on_mesh(entry.compiled, mesh, state, inputs)
        for slot, value in zip(entry.slots, new_state):
            slot.set(value)
        if entry.out_tree is None:  # a single Tensor (or None) was returned
            return Tensor._make(out_leaves, False, None) if entry.tensor_out else out_leaves
        import jax

        out_leaves = [Tensor._make(x, False, None) if is_t else x
                      for x, is_t in zip(out_leaves, entry.tensor_out)]
        return jax.tree_util.tree_unflatten(entry.out_tree, out_leaves)

    def _read_gradients(self, slots: list[_Slot], treedef: Any, leaves: list[Any],
                        inputs: list[Any]) -> list[_GradSlot]:
        """The gradient slots whose incoming value the step reads. The step is traced once
        abstractly (not counted in ``trace_count``) with every gradient as an input; those it
        never uses (``opt.zero_grad()`` first, or ``zero_grad()`` at the end so that they come in
        as None) are then neither inputs nor a reason to retrace. A step that cannot be traced
        with gradients present keeps them all."""
        grads = [s for s in slots if isinstance(s, _GradSlot)]
        if not grads:
            return []
        import jax

        probe = _Entry(slots, slots)
        pure = self._pure(probe, treedef, leaves)
        state = [jax.ShapeDtypeStruct(s.tensor.data.shape, s.tensor.data.dtype)
                 if isinstance(s, _GradSlot) else s.get() for s in slots]
        self._probing = True
        try:
            jaxpr = jax.make_jaxpr(pure)(state, inputs).jaxpr
        except Exception:  # e.g. a scan whose carry holds gradients that are None at the end
            return grads  # carry each gradient as it comes (None or an array)
        finally:
            self._probing = False
        used = {id(v) for eqn in jaxpr.eqns for v in eqn.invars}
        used |= {id(v) for v in jaxpr.outvars}
        read, k = [], 0
        for slot, value in zip(slots, state):
            n = len(jax.tree_util.tree_leaves(value))
            if isinstance(slot, _GradSlot) and id(jaxpr.invars[k]) in used:
                read.append(slot)
            k += n
        return read

    def _pure(self, entry: _Entry, treedef: Any, leaves: list[Any]) -> Callable[..., Any]:
        """The function of (state inputs, array inputs) that jax traces: it binds the traced
        arrays into the objects, runs ``fn`` and returns its outputs and every slot's new
        value; the objects get their concrete arrays back whatever happens."""
        import jax

        fn = self.fn

        def pure(state: list[Any], inputs: list[Any]) -> tuple[Any, list[Any]]:
            if not self._probing:
                self.trace_count += 1
            concrete = [slot.get() for slot in entry.slots]  # restored whatever happens
            try:
                for slot, value in zip(entry.inputs, state):
                    slot.set(value)
                for slot in entry.cleared:
                    slot.set(None)
                call_leaves = _call_leaves(leaves, inputs)
                if isinstance(treedef, int):
                    result = fn(*call_leaves)
                else:
                    call_args, call_kwargs = jax.tree_util.tree_unflatten(treedef, call_leaves)
                    result = fn(*call_args, **call_kwargs)
                new_state = [slot.get() for slot in entry.slots]
            finally:
                for slot, value in zip(entry.slots, concrete):
                    slot.set(value)
            if result is None or isinstance(result, Tensor):  # the common case, kept flat
                entry.out_tree, entry.tensor_out = None, result is not None
                return (None if result is None else result.data), new_state
            out_leaves, entry.out_tree = jax.tree_util.tree_flatten(
                result, is_leaf=lambda x: isinstance(x, Tensor))
            entry.tensor_out = [isinstance(x, Tensor) for x in out_leaves]
            return [x.data if isinstance(x, Tensor) else x for x in out_leaves], new_state

        return pure

    def _compile(self, entry: _Entry, treedef: Any, leaves: list[Any], mesh: Any = None,
                 layouts: Any = None) -> Any:
        import jax

        pure = self._pure(entry, treedef, leaves)
        donate = (0,) if self.donate else ()
        if self.checked:  # out-of-range gathers reported instead of clamped
            from jax.experimental import checkify

            return jax.jit(checkify.checkify(pure, errors=checkify.index_checks))
        if mesh is None:
            return jax.jit(pure, donate_argnums=donate)
        # data parallel: the state and the outputs replicated, each array input as it lies on the
        # mesh (a batch split along "data") or else replicated; XLA partitions the rest
        from jax.sharding import NamedSharding

        from ember.distributed import replicated

        rep = replicated(mesh)
        ins = [rep if spec is None else NamedSharding(mesh, spec) for spec in layouts]
        return jax.jit(pure, donate_argnums=donate, in_shardings=(rep, ins),
                       out_shardings=(rep, rep))


def _raise_index_error(fn: Callable[..., Any], err: Any) -> None:
    """IndexError naming ``fn`` when the checks of a ``checked=True`` call failed."""
    message = err.get()
    if message:
        raise IndexError(f"ember.jit({getattr(fn, '__name__', 'fn')}, checked=True): "
                         f"{message.strip().rstrip('.')}; the call changed no state")


def _call_leaves(leaves: list[Any], inputs: list[Any]) -> list[Any]:
    """The arguments the function is called with inside the trace: a constant Tensor wraps its
    traced array, an array argument is the traced array, everything else is passed as it is."""
    module_cls, opt_cls = _kinds()
    out = []
    for leaf, x in zip(leaves, inputs):
        if isinstance(leaf, Tensor) and not leaf.requires_grad:
            out.append(Tensor._make(x, False, None))
        elif x is not None and not isinstance(leaf, (Tensor, module_cls, opt_cls)):
            out.append(x)  # an array argument, traced
        else:
            out.append(leaf)
    return out


def _bind_mesh_probe() -> Any:
    """The current abstract mesh (what ``jax.set_mesh`` sets). The first call puts
    ``jax.sharding.get_abstract_mesh`` in its place and takes JAX's "no mesh" value as
    ``_NO_MESH``, so that the check in each call of a compiled function is one call and an
    identity test."""
    global _abstract_mesh, _NO_MESH
    import jax

    get = getattr(jax.sharding, "get_abstract_mesh", None)
    if get is None:  # a JAX without meshes in context: never a mesh
        _abstract_mesh = _no_mesh
        return _NO_MESH
    empty = sys.modules.get("jax._src.mesh")
    _NO_MESH = getattr(empty, "empty_abstract_mesh", None)  # else: _context_mesh decides
    _abstract_mesh = get
    return get()


def _no_mesh() -> Any:
    return _NO_MESH


_NO_MESH: Any = object()
_abstract_mesh: Callable[[], Any] = _bind_mesh_probe


def _context_mesh() -> Any:
    """The concrete mesh set with ``jax.set_mesh`` (None when only an abstract one is set)."""
    import jax

    get_mesh = getattr(jax.sharding, "get_mesh", None)
    mesh = get_mesh() if get_mesh is not None else None
    if mesh is None or mesh.empty:
        return None
    axis_type = getattr(jax.sharding, "AxisType", None)
    if axis_type is not None and any(t != axis_type.Auto for t in mesh.axis_types):
        raise ValueError(
            f"ember.jit: the mesh set with jax.set_mesh has axis types "
            f"{tuple(t.name for t in mesh.axis_types)}; ember needs Auto axes (its ops carry no "
            f"out_sharding): make it with ember.distributed.make_mesh(...) or jax.make_mesh(..., "
            f"axis_types=(jax.sharding.AxisType.Auto,) * {len(mesh.axis_types)}), or pass "
            f"ember.jit(fn, mesh=mesh) instead")
    return mesh


def _layouts(mesh: Any, inputs: list[Any]) -> tuple[Any, ...]:
    """For each input, the PartitionSpec it already has on ``mesh`` if it is split there, or
    None (replicate it)."""
    out = []
    for x in inputs:
        sharding = getattr(x, "sharding", None)
        spec = getattr(sharding, "spec", None)
        if spec is not None and any(p is not None for p in spec) and getattr(
                sharding, "mesh", None) == mesh:
            out.append(spec)
        else:
            out.append(None)
    return tuple(out)


def _placed(mesh: Any, values: list[Any]) -> list[Any]:
    """``values`` with every array that is not on ``mesh`` yet (a fresh model, zeros made eagerly,
    host arrays) copied whole to its devices: then every call sees the same argument types and
    the step traces once."""
    import jax

    from ember.distributed import replicated

    rep = replicated(mesh)

    def place(x: Any) -> Any:
        if x is None:
            return None
        if type(x) is dict:
            return {k: place(v) for k, v in x.items()}
        if getattr(getattr(x, "sharding", None), "mesh", None) is mesh:
            return x
        return jax.device_put(x, rep)

    return [place(x) for x in values]


def _call_on_mesh(compiled: Any, mesh: Any, state: list[Any], inputs: list[Any]) -> Any:
    """Call a mesh-compiled step, its arrays placed on the mesh first; state that lies on the mesh
    in another layout (e.g. split by hand) is replicated when the call refuses it."""
    state, inputs = _placed(mesh, state), _placed(mesh, inputs)
    try:
        return compiled(state, inputs)
    except ValueError as e:
        if "sharding" not in str(e).lower():
            raise
    import jax

    from ember.distributed import replicated

    return compiled(jax.device_put(state, replicated(mesh)), inputs)


class StateSlots:
    """The state arrays of some modules, optimizers and tensors, read and rebound as one list.

    This is what :func:`jit` carries; a whole-epoch ``scan`` uses it to carry the same state
    through each step of its body (read with :meth:`get`, rebind with :meth:`set`).

    Example:
        >>> from ember import nn
        >>> from ember.jit import state_slots
        >>> slots = state_slots(nn.Linear(2, 1))  # random stream, weight and grad, bias and grad
        >>> values = slots.get()
        >>> len(values), values[2] is None  # no gradient yet
        (5, True)
        >>> slots.set(values)
    """

    def __init__(self, slots: list[_Slot]) -> None:
        self._slots = slots

    def get(self) -> list[Any]:
        return [slot.get() for slot in self._slots]

    def set(self, values: list[Any]) -> None:
        for slot, value in zip(self._slots, values):
            slot.set(value)


def state_slots(*objects: Any, grads: bool = True, random: bool = True) -> StateSlots:
    """The state slots of ``objects`` (Modules, Optimizers, Tensors that require grad) plus
    ember's random stream, in the order :func:`jit` uses: for a Linear and SGD, the random
    stream, weight and its gradient, bias and its gradient, and the optimizer's state list.
    ``grads=False`` leaves out the gradients and ``random=False`` the random stream: e.g.
    ``state_slots(opt, grads=False, random=False)`` is what ``opt.step()`` changes.

    Example:
        >>> from ember import nn, optim
        >>> from ember.jit import state_slots
        >>> model = nn.Linear(3, 2)
        >>> opt = optim.SGD(model.parameters(), lr=0.1)
        >>> len(state_slots(model, opt).get())  # see above
        6
        >>> len(state_slots(opt, grads=False, random=False).get())  # weight, bias, SGD's state
        3
    """
    return StateSlots(JitFunction._slots(list(objects), grads, random))


def jit(fn: Callable[..., Any] | None = None, *, donate: bool = True, mesh: Any = None,
        checked: bool = False) -> Any:
    """Compile ``fn`` with XLA on the JAX backend (run it eagerly on NumPy).

    Args:
        fn: a function whose arguments are Modules, Optimizers, Tensors, arrays and hashable
            Python values, and whose body is ordinary ember code.
        donate: let XLA reuse the old state buffers for the new state (they are replaced anyway).
        mesh: data parallelism (see :mod:`ember.distributed`): a ``jax.sharding.Mesh``, or
            ``"all"``, a number of devices or a list of them (a 1-D mesh with the axis
            ``"data"``). The state (parameters, buffers, optimizer state, the random stream) and
            the outputs are replicated over it, an array argument already sharded on it keeps
            its sharding (split a batch with ``ember.distributed.shard_batch``), any other array
            is replicated. A call under ``jax.set_mesh(mesh)`` does the same without ``mesh=``.
        checked: check integer indexing inside the compiled call. Unchecked, JAX clamps an index
            out of range to the nearest valid one (``t[5]`` of 3 elements is ``t[2]``; an
            embedding or ``take_along_axis`` likewise) without a word; checked
            (``jax.experimental.checkify``), such a call raises IndexError naming ``fn`` and
            the index, and changes no state (no buffer donation then). Slower: for debugging.

    Returns:
        A :class:`JitFunction`; ``.trace_count`` tells how often it was traced.

    Example:
        >>> import ember
        >>> @ember.jit
        ... def double(x):
        ...     return x * 2
        >>> double(ember.tensor([1.0, 2.0])).tolist()
        [2.0, 4.0]
    """
    if fn is None:
        return functools.partial(jit, donate=donate, mesh=mesh, checked=checked)
    return JitFunction(fn, donate=donate, mesh=mesh, checked=checked)
