"""Matrix product with NumPy's semantics: 1-D vectors, 2-D matrices, batched with broadcasting."""

from __future__ import annotations

from typing import Any

from ember import backend
from ember.function import Function
from ember.ops import register


def _check(a: Any, b: Any) -> None:
    """Raise a ValueError naming both shapes when ``a @ b`` is not defined."""
    sa, sb = tuple(a.shape), tuple(b.shape)
    if not sa or not sb:
        raise ValueError(f"ember.matmul: shapes {sa} and {sb}: both operands need at least one "
                         f"dimension (use * for scalars)")
    k_b = sb[-2] if len(sb) > 1 else sb[0]
    if sa[-1] != k_b:
        raise ValueError(f"ember.matmul: shapes {sa} and {sb} are not aligned: {sa[-1]} (last "
                         f"axis of the first) != {k_b} (axis {-2 if len(sb) > 1 else 0} of the "
                         f"second)")
    try:
        backend.get().xp.broadcast_shapes(sa[:-2], sb[:-2])
    except (ValueError, TypeError):
        raise ValueError(f"ember.matmul: shapes {sa} and {sb}: batch dimensions {sa[:-2]} and "
                         f"{sb[:-2]} cannot be broadcast together") from None


def _transposed_view(b: Any) -> bool:
    """Whether ``b`` is a column-major NumPy matrix (typically ``w.T`` of a row-major weight).
    Its gradient is then computed as ``(g^T a)^T``, which comes back to ``w`` row-major: the
    optimizer's elementwise update runs about twice as fast on matching layouts. Same product,
    same cost; JAX arrays have no layout to match."""
    flags = getattr(b, "flags", None)
    return flags is not None and b.ndim == 2 and flags.f_contiguous and not flags.c_contiguous


@register("matmul", dunders=("__matmul__",), rdunders=("__rmatmul__",))
class MatMul(Function):
    """Matrix product ``a @ b`` with NumPy's rules.

    Example:
        >>> import ember
        >>> (ember.ones(2, 3) @ ember.ones(3)).tolist()
        [3.0, 3.0]
    """

    def forward(ctx, a, b):
        if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
            _check(a, b)
        ctx.save_for_backward(a, b)
        try:
            return a @ b
        except (ValueError, TypeError):
            _check(a, b)
            raise

    def backward(ctx, g):
        a, b = ctx.saved_tensors
        xp = backend.get().xp
        # Treat vectors as matrices (a row for a, a column for b), then drop the added axis.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            g = g[..., None]
        if a.ndim == 1:
            g = g[..., None, :]
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = g @ xp.swapaxes(b2, -1, -2)
            if a.ndim == 1:
                ga = ga[..., 0, :]
        if ctx.needs_input_grad[1]:
            if _transposed_view(b2):  # e.g. x @ w.T: give w's gradient w's own (row-major) layout
                gb = xp.swapaxes(xp.swapaxes(g, -1, -2) @ a2, -1, -2)
            else:
                gb = xp.swapaxes(a2, -1, -2) @ g
            if b.ndim == 1:
                gb = gb[..., :, 0]
        return ga, gb  # batch axes that were broadcast are summed by the engine
