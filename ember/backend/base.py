"""The interface every backend implements: an array namespace plus the kernels that differ."""

from __future__ import annotations

from typing import Any


def pool_windows_tile(kernel: Any, stride: Any, padding: Any, dilation: Any = (1, 1)) -> bool:
    """True when pooling windows tile the input (stride = kernel, no padding, no dilation): both
    backends then build the gradient in the input's own layout instead of scattering it."""
    return (tuple(stride) == tuple(kernel) and tuple(dilation) == (1, 1)
            and not any(lo or hi for lo, hi in padding))


def pool_divisor(divisor: Any) -> Any:
    """The (P, Q) divisor of average pooling as nested lists: the outer product of the per-axis
    counts ``divisor = (rows, cols)`` that ember/ops/conv.py computes."""
    rows, cols = divisor
    return [[float(r * c) for c in cols] for r in rows]


class Backend:
    """An array namespace (``xp``) and the handful of kernels whose best form differs.

    Subclasses set ``name`` and ``xp`` and implement the methods below. Arrays are never mutated in
    place by framework code, so the same op code runs on NumPy arrays and on immutable JAX arrays
    and tracers.

    Example:
        >>> from ember import backend
        >>> bk = backend.get()                 # the active Backend
        >>> isinstance(bk, backend.Backend), bk.to_numpy(bk.erf(bk.xp.zeros(2))).tolist()
        (True, [0.0, 0.0])
    """

    name: str = ""
    xp: Any = None

    def __init__(self) -> None:
        self._owned: dict[type, bool] = {}

    def __repr__(self) -> str:
        return f"<ember backend {self.name!r}>"

    # -- arrays -------------------------------------------------------------------------------
    def _array_classes(self) -> tuple[type, ...]:
        raise NotImplementedError

    def owns(self, array: Any) -> bool:
        """Whether ``array`` is an array of this backend (cached per type: a hot path)."""
        t = type(array)
        known = self._owned.get(t)
        if known is None:
            known = self._owned[t] = isinstance(array, self._array_classes())
        return known

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """``data`` as an array of this backend, with ``dtype`` if given."""
        return self.xp.asarray(data, dtype=dtype)

    def to_numpy(self, array: Any) -> Any:
        """A NumPy array on the host holding ``array``'s values."""
        raise NotImplementedError

    # -- kernels --------------------------------------------------------------------------------
    def index_add(self, shape: tuple[int, ...], dtype: Any, index: Any, values: Any) -> Any:
        """A zero array of ``shape`` with ``values`` added at ``index`` (repeats accumulate)."""
        raise NotImplementedError

    def erf(self, x: Any) -> Any:
        """The error function, elementwise."""
        raise NotImplementedError

    # -- random numbers: counter-based keys, so a draw is a pure function of (key, shape) -----
    def key(self, seed: int) -> Any:
        """A random key (a small unsigned-integer array) made from an integer seed."""
        raise NotImplementedError

    def fold_in(self, key: Any, data: int) -> Any:
        """A new key derived from ``key`` and the integer ``data``."""
        raise NotImplementedError

    def split(self, key: Any, num: int = 2) -> Any:
        """``num`` independent keys derived from ``key``, stacked along axis 0."""
        raise NotImplementedError

    def uniform(self, key: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        """Uniform draws in [0, 1)."""
        raise NotImplementedError

    def normal(self, key: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        """Standard normal draws."""
        raise NotImplementedError

    # -- convolution and pooling (NCHW); ember/ops/conv.py normalises the arguments -------------
    # ``stride`` and ``dilation`` are pairs (rows, columns); ``padding`` is ((top, bottom),
    # (left, right)); ``kernel`` is (KH, KW); ``groups`` divides the channels.
    def conv2d(
        self, x: Any, w: Any, b: Any, stride: tuple[int, int], padding: Any,
        dilation: tuple[int, int], groups: int = 1,
    ) -> tuple[Any, Any]:
        """Cross-correlate ``x`` (N, C, H, W) with ``w`` (O, C / groups, KH, KW) and add the bias
        ``b`` (O,), or nothing when it is None. Output channels ``[j * O / groups, (j + 1) * O /
        groups)`` read only input channels ``[j * C / groups, (j + 1) * C / groups)``.

        Returns the output (N, O, P, Q) and what :meth:`conv2d_grads` needs (the input, or its
        unfolded columns on NumPy), so that the weight gradient does not unfold it again.
        """
        raise NotImplementedError

    def conv2d_grads(
        self, g: Any, w: Any, saved: Any, x_shape: tuple[int, ...], stride: tuple[int, int],
        padding: Any, dilation: tuple[int, int], groups: int, need: tuple[bool, bool, bool],
    ) -> tuple[Any, Any, Any]:
        """The gradients of :meth:`conv2d` with respect to the input (a transposed convolution),
        the weight and the bias, each where ``need`` says so (else None). ``saved`` is
        :meth:`conv2d`'s second result."""
        raise NotImplementedError

    def max_pool2d(
        self, x: Any, kernel: tuple[int, int], stride: tuple[int, int], padding: Any,
        dilation: tuple[int, int] = (1, 1), need_grad: bool = False,
    ) -> tuple[Any, Any]:
        """The maximum over each window of ``kernel`` taps ``dilation`` apart (padding counts as
        -inf).

        Returns the output and, when ``need_grad``, what :meth:`max_pool2d_grad` needs (the input
        on JAX; on NumPy the offset of each window's first maximum), else None.
        """
        raise NotImplementedError

    def max_pool2d_grad(
        self, g: Any, saved: Any, x_shape: tuple[int, ...], kernel: tuple[int, int],
        stride: tuple[int, int], padding: Any, dilation: tuple[int, int] = (1, 1),
    ) -> Any:
        """Route each window's gradient to its first maximal element (row-major order within
        the window, as PyTorch); overlapping windows accumulate. ``saved`` comes from
        :meth:`max_pool2d` with ``need_grad=True``."""
        raise NotImplementedError

    def avg_pool2d(
        self, x: Any, kernel: tuple[int, int], stride: tuple[int, int], padding: Any,
        dilation: tuple[int, int] = (1, 1), divisor: Any = None,
    ) -> Any:
        """The sum over each window (padding counted as zeros) divided by ``KH * KW``, or, when
        ``divisor`` is per-axis counts ``(rows, cols)``, by :func:`pool_divisor`'s array."""
        raise NotImplementedError

    def avg_pool2d_grad(
        self, g: Any, x_shape: tuple[int, ...], kernel: tuple[int, int],
        stride: tuple[int, int], padding: Any, dilation: tuple[int, int] = (1, 1),
        divisor: Any = None,
    ) -> Any:
        """The gradient of :meth:`avg_pool2d`: each window's gradient spread evenly over it."""
        raise NotImplementedError

    # -- control flow -----------------------------------------------------------------------------
    def platform(self) -> str:
        """Where arrays are computed: ``"cpu"``, ``"gpu"`` or ``"tpu"``."""
        return "cpu"

    def scan(self, body: Any, carry: Any, xs: Any, unroll: bool = False) -> tuple[Any, Any]:
        """``lax.scan``'s contract: apply ``body(carry, x) -> (carry, y)`` to each leading slice of
        the pytree ``xs``; return the last carry and the ``y``s stacked. ``unroll``: one copy of
        the body per slice, no loop in the compiled program."""
        raise NotImplementedError

    def cond(self, pred: Any, true_fn: Any, false_fn: Any, operand: Any) -> Any:
        """``lax.cond``'s contract: ``true_fn(operand)`` if ``pred`` else ``false_fn(operand)``,
        both returning the same structure; compiled, only the chosen branch runs."""
        return true_fn(operand) if bool(pred) else false_fn(operand)

    def take_rows(self, arrays: tuple[Any, ...], start: int, size: int) -> tuple[Any, ...]:
        """Rows ``start:start + size`` of each array, in one call (one dispatch on JAX)."""
        return tuple(a[start:start + size] for a in arrays)

    def gather_rows(self, arrays: tuple[Any, ...], index: Any) -> tuple[Any, ...]:
        """Rows ``index`` (a host integer array) of each array, in one call."""
        return tuple(a[index] for a in arrays)
