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
        if a.ndim > 2 and b.ndim == 2:  # (..., K) @ (K, N), e.g. a Linear over (B, T, K): one
            # GEMM over the flattened rows instead of a loop of small ones (and of B weight
            # gradients summed afterwards in backward)
            return (a.reshape(-1, a.shape[-1]) @ b).reshape(*a.shape[:-1], b.shape[-1])
        try:
            return a @ b
        except (ValueError, TypeError):
            _check(a, b)
            raise

    def backward(ctx, g):
        a, b = ctx.saved_tensors
        if a.ndim > 2 and b.ndim == 2 and g.shape[:-1] == a.shape[:-1]:
            shape = a.shape  # the rows flattened, as in forward
            ga, gb = _matmul_grads(ctx, a.reshape(-1, shape[-1]), b, g.reshape(-1, g.shape[-1]))
            return (None if ga is None else ga.reshape(shape)), gb
        return _matmul_grads(ctx, a, b, g)


def _matmul_grads(ctx: Any, a: Any, b: Any, g: Any) -> tuple[Any, Any]:
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


def _parse(spec: str, n: int) -> tuple[list[str], str]:
    """The input subscripts and the output of an einsum ``spec`` (implicit output: the letters
    that appear once, sorted, after any ``...``)."""
    spec = spec.replace(" ", "")
    ins, arrow, out = spec.partition("->")
    subs = ins.split(",")
    if len(subs) != n:
        raise ValueError(f"ember.einsum: {spec!r} names {len(subs)} operands but {n} were given")
    if not arrow:
        letters = ins.replace(",", "").replace("...", "")
        out = ("..." if "..." in ins else "") + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1))
    return subs, out


@register("einsum", method=False)
class Einsum(Function):
    """Einstein summation (NumPy's ``einsum``), differentiable for every operand: the gradient
    of each is an einsum of the output gradient with the other operands (put back on the
    diagonal for a repeated index such as "ii").

    Example:
        >>> import ember
        >>> a, b = ember.ones(2, 3), ember.ones(3, 4)
        >>> ember.einsum("ij,jk->ik", a, b).shape
        (2, 4)
    """

    def forward(ctx, spec, *operands):
        ctx.subs, ctx.out = _parse(spec, len(operands))
        ctx.save_for_backward(*operands)
        try:
            return backend.get().xp.einsum(spec, *operands)
        except (ValueError, TypeError) as e:
            shapes = ", ".join(str(tuple(o.shape)) for o in operands)
            raise ValueError(f"ember.einsum: {spec!r} does not fit operands of shapes {shapes}: "
                             f"{e}") from None

    def backward(ctx, g):
        xp = backend.get().xp
        ops = ctx.saved_tensors
        subs, out = _explicit(ctx.subs, ctx.out, ops)
        grads: list[Any] = [None]
        for i, (sub, op) in enumerate(zip(subs, ops)):
            if not ctx.needs_input_grad[i + 1]:
                grads.append(None)
                continue
            others = [s for j, s in enumerate(subs) if j != i]
            seen = out + "".join(others)
            uniq = "".join(dict.fromkeys(sub))  # a repeated index (a diagonal) once
            kept = "".join(c for c in uniq if c in seen)
            spec = ",".join([out, *others]) + "->" + kept
            gi = xp.einsum(spec, g, *[o for j, o in enumerate(ops) if j != i])
            size = dict(zip(sub, op.shape))
            if kept != uniq:  # letters summed over in this operand alone: broadcast back
                pos = tuple(j for j, c in enumerate(uniq) if c not in seen)
                gi = xp.broadcast_to(xp.expand_dims(gi, pos), tuple(size[c] for c in uniq))
            for j, c in enumerate(sub):  # a repeated index: the gradient lies on the diagonal
                first = sub.index(c)
                if first < j:
                    eye = xp.eye(size[c], dtype=gi.dtype).reshape(
                        [size[c] if a in (first, j) else 1 for a in range(gi.ndim + 1)])
                    gi = xp.expand_dims(gi, j) * eye
            grads.append(gi)
        return tuple(grads)


def _explicit(subs: list[str], out: str, ops: tuple[Any, ...]) -> tuple[list[str], str]:
    """The subscripts with each ``...`` spelled out in unused letters (right-aligned, as NumPy
    broadcasts), so that a gradient's spec may drop or reorder them."""
    if not any("..." in s for s in subs):
        return subs, out
    used = set("".join(subs) + out)
    free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used]
    leads = [op.ndim - len(s.replace("...", "")) for s, op in zip(subs, ops)]
    nb = max(leads)
    names = "".join(free[:nb])
    subs = [s.replace("...", names[nb - n:]) for s, n in zip(subs, leads)]
    return subs, out.replace("...", names)
