"""The op table: one row per registered op, with a NumPy/JAX reference and input shapes.

The test suite (``tests/test_ops.py``) checks every row three ways on both backends (forward
against the reference, gradcheck in float64, gradients against ``jax.vjp``), and ``ember
gradcheck`` runs the gradient checks from the command line. A meta-test fails when an op
registered in ``ember.ops.REGISTRY`` has no row.

A reference is ``ref(xp, *arrays)`` with ``xp`` NumPy or ``jax.numpy``. The two references that
need special functions import scipy (NumPy side) lazily, so this module imports with NumPy only.

Example:
    >>> from ember.testing.table import ROWS, inputs_for
    >>> row = next(r for r in ROWS if r.name == "tanh")
    >>> [x.shape for x in inputs_for(row, row.cases[0], seed=2)]
    [(3, 4)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np  # references and test inputs are host arrays

from ember import backend, creation
from ember.ops import REGISTRY


class _Namespace:
    """``ember.<op>`` for the rows without importing the ``ember`` facade (a floor above): the
    registered ops, then ``ember.creation`` (``tensor``...), and ``backend``."""

    backend = backend

    def __getattr__(self, name: str) -> Any:
        if name in REGISTRY:
            return REGISTRY[name]
        return getattr(creation, name)


ember: Any = _Namespace()

__all__ = ["Row", "ROWS", "draw", "inputs_for"]


def _erf(xp: Any, x: Any) -> Any:
    if xp is np:
        import scipy.special  # only the NumPy reference needs scipy (not an ember dependency)

        return scipy.special.erf(x)
    import jax.scipy.special

    return jax.scipy.special.erf(x)


def _ln_ref(xp: Any, x: Any, axes: tuple[int, ...]) -> Any:
    xc = x - x.mean(axis=axes, keepdims=True)
    return xc / xp.sqrt((xc * xc).mean(axis=axes, keepdims=True) + 1e-5)


def _softplus_ref(xp: Any, x: Any) -> Any:
    return xp.logaddexp(x, 0.0)


def _log_softmax_ref(xp: Any, x: Any, axis: int = -1) -> Any:
    m = xp.max(x, axis=axis, keepdims=True)
    return x - m - xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True))


def _softmax_ref(xp: Any, x: Any, axis: int = -1) -> Any:
    return xp.exp(_log_softmax_ref(xp, x, axis))


def _gelu_ref(xp: Any, x: Any) -> Any:
    return 0.5 * x * (1 + _erf(xp, x / np.sqrt(2)))


def _gelu_tanh_ref(xp: Any, x: Any) -> Any:
    return 0.5 * x * (1 + xp.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


@dataclass
class Row:
    """One line of the op table: an ember call, its reference in ``xp``, and the input shapes.

    Example:
        >>> import numpy as np
        >>> row = Row("exp", lambda a: a.exp(), lambda xp, a: xp.exp(a), [((3,),)])
        >>> row.ref(np, np.zeros(3)).tolist()
        [1.0, 1.0, 1.0]
    """

    name: str  # the registered op this row covers
    fn: Callable[..., Any]  # the ember call, on tensors
    ref: Callable[..., Any]  # the same computation as ref(xp, *arrays), xp = numpy or jax.numpy
    cases: Sequence[tuple[tuple[int, ...], ...]]  # input shapes, one tuple of shapes per case
    domain: str = "real"  # how inputs are drawn (see draw())
    grad: bool = True  # False: forward only (the op carries no gradient)
    atol: float = 1e-5
    rtol: float = 1e-3
    ids: list[str] = field(default_factory=list)


MASK = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, True]])
COND = np.array([[True, False, True, False], [False, True, True, False], [True, True, False, True]])

BINARY = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((4,), (2, 3, 4)), ((), (2, 3)), ((2, 3), ())]
UNARY = [((3, 4),), ((),), ((2, 1, 3),)]
AXES: list[Any] = [None, 0, -1, (0, 2), 1]


def _reduction_row(name: str, axis: Any) -> Row:
    """``x.<name>(axis=axis)`` against ``xp.<name>(x, axis=axis)`` on a (2, 3, 4) input."""
    return Row(name, lambda a: getattr(a, name)(axis=axis),
               lambda xp, a: getattr(xp, name)(a, axis=axis), [((2, 3, 4),)])


ROWS: list[Row] = [
    # arithmetic
    Row("add", lambda a, b: a + b, lambda xp, a, b: a + b, BINARY),
    Row("add", lambda a: 2.5 + a, lambda xp, a: 2.5 + a, UNARY),
    Row("sub", lambda a, b: a - b, lambda xp, a, b: a - b, BINARY),
    Row("sub", lambda a: 1.0 - a, lambda xp, a: 1.0 - a, UNARY),
    Row("mul", lambda a, b: a * b, lambda xp, a, b: a * b, BINARY),
    Row("mul", lambda a: a * 3.0, lambda xp, a: a * 3.0, UNARY),
    Row("div", lambda a, b: a / b, lambda xp, a, b: a / b, BINARY, domain="positive"),
    Row("div", lambda a: 2.0 / a, lambda xp, a: 2.0 / a, UNARY, domain="positive"),
    Row("pow", lambda a, b: a**b, lambda xp, a, b: a**b, BINARY, domain="positive"),
    Row("pow", lambda a: a**2, lambda xp, a: a**2, UNARY),
    Row("pow", lambda a: a**-1.5, lambda xp, a: a**-1.5, UNARY, domain="positive"),
    Row("pow", lambda a: 2.0**a, lambda xp, a: 2.0**a, UNARY),
    Row("neg", lambda a: -a, lambda xp, a: -a, UNARY),
    Row("exp", lambda a: a.exp(), lambda xp, a: xp.exp(a), UNARY),
    Row("log", lambda a: a.log(), lambda xp, a: xp.log(a), UNARY, domain="positive"),
    Row("sqrt", lambda a: a.sqrt(), lambda xp, a: xp.sqrt(a), UNARY, domain="positive"),
    Row("abs", lambda a: abs(a), lambda xp, a: xp.abs(a), UNARY, domain="nonzero"),
    Row("sin", lambda a: a.sin(), lambda xp, a: xp.sin(a), UNARY),
    Row("cos", lambda a: a.cos(), lambda xp, a: xp.cos(a), UNARY),
    Row("erf", lambda a: a.erf(), lambda xp, a: _erf(xp, a), UNARY),
    Row("maximum", ember.maximum, lambda xp, a, b: xp.maximum(a, b), BINARY, domain="distinct"),
    Row("minimum", ember.minimum, lambda xp, a, b: xp.minimum(a, b), BINARY, domain="distinct"),
    Row("clip", lambda a: a.clip(-0.5, 0.5), lambda xp, a: xp.clip(a, -0.5, 0.5), UNARY,
        domain="grid"),
    Row("clip", lambda a: ember.clip(a, min=0.2), lambda xp, a: xp.maximum(a, 0.2), UNARY,
        domain="grid"),
    Row("clamp", lambda a: a.clamp(-0.5, 0.5), lambda xp, a: xp.clip(a, -0.5, 0.5), UNARY,
        domain="grid"),
    Row("clamp", lambda a: ember.clamp(a, max=0.2), lambda xp, a: xp.minimum(a, 0.2), UNARY,
        domain="grid"),
    Row("where", lambda a, b: ember.where(COND, a, b), lambda xp, a, b: xp.where(COND, a, b),
        [((3, 4), (3, 4)), ((3, 1), (4,)), ((), (3, 4))]),
    Row("astype", lambda a: a.astype("float64") * 2, lambda xp, a: a.astype(np.float64) * 2,
        UNARY),
    # activations
    Row("relu", lambda a: a.relu(), lambda xp, a: xp.maximum(a, 0), UNARY, domain="nonzero"),
    Row("leaky_relu", lambda a: a.leaky_relu(0.2), lambda xp, a: xp.where(a > 0, a, 0.2 * a),
        UNARY, domain="nonzero"),
    Row("leaky_relu", lambda a: ember.leaky_relu(a), lambda xp, a: xp.where(a > 0, a, 0.01 * a),
        UNARY, domain="nonzero"),
    Row("sigmoid", lambda a: a.sigmoid(), lambda xp, a: 1 / (1 + xp.exp(-a)), UNARY, domain="wide"),
    Row("tanh", lambda a: a.tanh(), lambda xp, a: xp.tanh(a), UNARY),
    Row("softplus", lambda a: a.softplus(), _softplus_ref, UNARY + [((5,),)], domain="wide"),
    Row("gelu", lambda a: a.gelu(), _gelu_ref, UNARY),
    Row("gelu", lambda a: a.gelu(approximate="tanh"), _gelu_tanh_ref, UNARY),
    Row("softmax", lambda a: a.softmax(), _softmax_ref, [((3, 4),), ((5,),), ((2, 3, 4),)]),
    Row("softmax", lambda a: a.softmax(axis=0), lambda xp, a: _softmax_ref(xp, a, 0),
        [((3, 4),)]),
    Row("log_softmax", lambda a: a.log_softmax(), _log_softmax_ref, [((3, 4),), ((5,),)]),
    Row("log_softmax", lambda a: a.log_softmax(axis=1),
        lambda xp, a: _log_softmax_ref(xp, a, 1), [((2, 3, 4),)]),
    Row("logsumexp", lambda a: a.logsumexp(), lambda xp, a: _scipy_lse(xp, a, None),
        [((3, 4),), ((),)]),
    Row("logsumexp", lambda a: a.logsumexp(axis=1),
        lambda xp, a: _scipy_lse(xp, a, 1), [((3, 4),), ((2, 3, 4),)]),
    Row("logsumexp", lambda a: a.logsumexp(axis=(0, 2), keepdims=True),
        lambda xp, a: _scipy_lse(xp, a, (0, 2), True), [((2, 3, 4),)]),
    # reductions
    *[_reduction_row("sum", ax) for ax in AXES],
    Row("sum", lambda a: a.sum(axis=1, keepdims=True),
        lambda xp, a: xp.sum(a, axis=1, keepdims=True), [((2, 3, 4),), ((3, 4),)]),
    Row("sum", lambda a: a.sum(), lambda xp, a: xp.sum(a), [((),), ((5,),)]),
    *[_reduction_row("mean", ax) for ax in AXES],
    Row("mean", lambda a: a.mean(axis=(0, 1), keepdims=True),
        lambda xp, a: xp.mean(a, axis=(0, 1), keepdims=True), [((2, 3, 4),)]),
    *[_reduction_row("max", ax) for ax in AXES],
    Row("max", lambda a: a.max(axis=0, keepdims=True),
        lambda xp, a: xp.max(a, axis=0, keepdims=True), [((3, 4),)]),
    *[_reduction_row("min", ax) for ax in AXES],
    Row("var", lambda a: a.var(), lambda xp, a: xp.var(a), [((3, 4),), ((5,),)]),
    Row("var", lambda a: a.var(axis=1, ddof=1), lambda xp, a: xp.var(a, axis=1, ddof=1),
        [((3, 4),)]),
    Row("var", lambda a: a.var(axis=(0, 2), keepdims=True),
        lambda xp, a: xp.var(a, axis=(0, 2), keepdims=True), [((2, 3, 4),)]),
    Row("std", lambda a: a.std(), lambda xp, a: xp.std(a), [((3, 4),)]),
    Row("std", lambda a: a.std(axis=0, ddof=1), lambda xp, a: xp.std(a, axis=0, ddof=1),
        [((3, 4),)]),
    Row("argmax", lambda a: a.argmax(), lambda xp, a: xp.argmax(a), [((3, 4),)], grad=False),
    Row("argmax", lambda a: a.argmax(axis=1), lambda xp, a: xp.argmax(a, axis=1),
        [((3, 4),), ((2, 3, 4),)], grad=False),
    Row("argmin", lambda a: a.argmin(axis=0), lambda xp, a: xp.argmin(a, axis=0), [((3, 4),)],
        grad=False),
    Row("argmin", lambda a: ember.argmin(a, axis=-1, keepdims=True),
        lambda xp, a: xp.argmin(a, axis=-1, keepdims=True), [((3, 4),)], grad=False),
    # matmul
    Row("matmul", lambda a, b: a @ b, lambda xp, a, b: a @ b,
        [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
         ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,))]),
    Row("matmul", lambda a: a.matmul(a.T), lambda xp, a: a @ a.T, [((3, 4),)]),
    Row("matmul", lambda a, w: a @ w.T, lambda xp, a, w: a @ w.T,  # a layer's x @ w.T
        [((3, 4), (5, 4)), ((2, 3, 4), (5, 4))]),
    # shapes
    Row("reshape", lambda a: a.reshape(4, -1), lambda xp, a: a.reshape(4, -1), [((2, 3, 2),)]),
    Row("reshape", lambda a: ember.reshape(a, (6,)), lambda xp, a: a.reshape(6), [((2, 3),)]),
    Row("flatten", lambda a: a.flatten(), lambda xp, a: a.reshape(-1), [((2, 3, 2),), ((),)]),
    Row("flatten", lambda a: a.flatten(1), lambda xp, a: a.reshape(2, -1), [((2, 3, 2),)]),
    Row("flatten", lambda a: a.flatten(0, 1), lambda xp, a: a.reshape(6, 2), [((2, 3, 2),)]),
    Row("transpose", lambda a: a.transpose(), lambda xp, a: xp.transpose(a), [((2, 3, 4),)]),
    Row("transpose", lambda a: a.transpose(1, 2, 0), lambda xp, a: xp.transpose(a, (1, 2, 0)),
        [((2, 3, 4),)]),
    Row("transpose", lambda a: a.T, lambda xp, a: a.T, [((3, 4),)]),
    Row("permute", lambda a: a.permute(2, 0, 1), lambda xp, a: xp.transpose(a, (2, 0, 1)),
        [((2, 3, 4),)]),
    Row("swapaxes", lambda a: a.swapaxes(0, -1), lambda xp, a: xp.swapaxes(a, 0, -1),
        [((2, 3, 4),)]),
    Row("squeeze", lambda a: a.squeeze(), lambda xp, a: xp.squeeze(a), [((1, 3, 1, 2),)]),
    Row("squeeze", lambda a: a.squeeze(2), lambda xp, a: xp.squeeze(a, 2), [((1, 3, 1, 2),)]),
    Row("unsqueeze", lambda a: a.unsqueeze(1), lambda xp, a: xp.expand_dims(a, 1), [((3, 2),)]),
    Row("unsqueeze", lambda a: a.unsqueeze(-1), lambda xp, a: xp.expand_dims(a, -1),
        [((3, 2),), ((),)]),
    Row("broadcast_to", lambda a: a.broadcast_to((2, 3, 4)),
        lambda xp, a: xp.broadcast_to(a, (2, 3, 4)), [((3, 1),), ((4,),), ((),), ((2, 3, 4),)]),
    Row("concatenate", lambda a, b: ember.concatenate([a, b], axis=1),
        lambda xp, a, b: xp.concatenate([a, b], axis=1),
        [((3, 2), (3, 4)), ((2, 1, 3), (2, 2, 3))]),
    Row("concatenate", lambda a, b: ember.concatenate([a, b, a]),
        lambda xp, a, b: xp.concatenate([a, b, a]), [((2,), (3,))]),
    Row("cat", lambda a, b: ember.cat([a, b], dim=1), lambda xp, a, b: xp.concatenate([a, b], 1),
        [((3, 2), (3, 4))]),
    Row("stack", lambda a, b: ember.stack([a, b]), lambda xp, a, b: xp.stack([a, b]),
        [((3, 2), (3, 2))]),
    Row("stack", lambda a, b: ember.stack([a, b, a], axis=-1),
        lambda xp, a, b: xp.stack([a, b, a], axis=-1), [((3, 2), (3, 2))]),
    Row("split", lambda a: a.split(2, axis=1)[1] * 3 - a.split(2, axis=1)[0],
        lambda xp, a: xp.split(a, 2, axis=1)[1] * 3 - xp.split(a, 2, axis=1)[0], [((3, 4),)]),
    Row("split", lambda a: ember.concatenate(a.split([1, 3])[::-1]),
        lambda xp, a: xp.concatenate(xp.split(a, [1, 3])[::-1]), [((5, 2),)]),
    Row("pad", lambda a: a.pad(1), lambda xp, a: xp.pad(a, 1), [((2, 3),), ((4,),)]),
    Row("pad", lambda a: a.pad(((0, 0), (2, 1)), value=-1.0),
        lambda xp, a: xp.pad(a, ((0, 0), (2, 1)), constant_values=-1.0), [((2, 3),)]),
    Row("pad", lambda a: ember.pad(a, (1, 2)), lambda xp, a: xp.pad(a, (1, 2)), [((2, 3),)]),
    # indexing
    Row("getitem", lambda a: a[1], lambda xp, a: a[1], [((3, 4),)]),
    Row("getitem", lambda a: a[:, 1:3], lambda xp, a: a[:, 1:3], [((3, 4),)]),
    Row("getitem", lambda a: a[::-1, ::2], lambda xp, a: a[::-1, ::2], [((3, 4),)]),
    Row("getitem", lambda a: a[None, ..., -1], lambda xp, a: a[None, ..., -1], [((2, 3, 4),)]),
    Row("getitem", lambda a: a[[0, 2, 0, 0]], lambda xp, a: a[np.array([0, 2, 0, 0])],
        [((3, 4),)]),
    Row("getitem", lambda a: a[ember.tensor([2, 2]), 1:],
        lambda xp, a: a[np.array([2, 2]), 1:], [((3, 4),)]),
    Row("getitem", lambda a: a[np.array([0, 1, 1]), np.array([3, 0, 0])],
        lambda xp, a: a[np.array([0, 1, 1]), np.array([3, 0, 0])], [((3, 4),)]),
    Row("getitem", lambda a: a[MASK], lambda xp, a: a[MASK], [((3, 4),)]),
    Row("getitem", lambda a: a[ember.tensor(MASK)] * 2, lambda xp, a: a[MASK] * 2, [((3, 4),)]),
    # comparisons: forward only
    Row("eq", lambda a, b: a == b, lambda xp, a, b: a == b, BINARY, domain="ties", grad=False),
    Row("ne", lambda a, b: a != b, lambda xp, a, b: a != b, BINARY, domain="ties", grad=False),
    Row("lt", lambda a, b: a < b, lambda xp, a, b: a < b, BINARY, domain="ties", grad=False),
    Row("le", lambda a, b: a <= b, lambda xp, a, b: a <= b, BINARY, domain="ties", grad=False),
    Row("gt", lambda a, b: a > b, lambda xp, a, b: a > b, BINARY, domain="ties", grad=False),
    Row("ge", lambda a, b: a >= b, lambda xp, a, b: a >= b, BINARY, domain="ties", grad=False),
    Row("gt", lambda a: 0.0 < a, lambda xp, a: 0.0 < a, UNARY, grad=False),
]


def _scipy_lse(xp: Any, a: Any, axis: Any, keepdims: bool = False) -> Any:
    if xp is np:
        import scipy.special

        return scipy.special.logsumexp(a, axis=axis, keepdims=keepdims)
    import jax.scipy.special

    return jax.scipy.special.logsumexp(a, axis=axis, keepdims=keepdims)


def draw(rng: np.random.Generator, shape: tuple[int, ...], domain: str) -> np.ndarray:
    """Inputs matched to an op's domain, in float64, kept away from kinks and singularities.

    Domains: ``real`` (standard normal), ``positive`` (0.5..2), ``nonzero`` (|x| >= 0.1),
    ``grid`` (away from the clip bounds), ``wide`` (-6..6), ``ties`` (-1, 0, 1) and ``distinct``
    (as ``real``; :func:`inputs_for` then separates pairs).

    Example:
        >>> import numpy as np
        >>> x = draw(np.random.default_rng(0), (2, 3), "positive")
        >>> x.shape, x.dtype, bool((x >= 0.5).all())
        ((2, 3), dtype('float64'), True)
    """
    if domain == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "nonzero":  # |x| >= 0.1: no finite difference straddles a kink at 0
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 2.0, shape)
    if domain == "grid":  # away from the clip bounds -0.5, 0.2 and 0.5
        return rng.choice([-0.9, -0.7, -0.3, 0.0, 0.35, 0.7, 0.9], shape) + rng.uniform(
            -0.02, 0.02, shape)
    if domain == "wide":
        return rng.uniform(-6.0, 6.0, shape)
    if domain == "ties":  # few distinct values, so == and <= see ties
        return rng.choice([-1.0, 0.0, 1.0], shape)
    return rng.standard_normal(shape)


def inputs_for(row: Row, case: tuple[tuple[int, ...], ...], seed: int) -> list[np.ndarray]:
    """The float64 inputs of one case of ``row``, drawn from ``seed`` (the same every call).

    Example:
        >>> row = next(r for r in ROWS if r.name == "maximum")
        >>> a, b = inputs_for(row, row.cases[0], seed=0)
        >>> a.shape, bool((abs(a - b) >= 0.1).all())
        ((3, 4), True)
    """
    rng = np.random.default_rng(seed)
    arrays = [draw(rng, shape, row.domain) for shape in case]
    if row.domain == "distinct" and len(arrays) == 2:  # maximum/minimum: no ties within 0.1
        a, b = arrays
        b = b + np.where(np.abs(a - b) < 0.1, 0.3, 0.0)
        arrays = [a, b]
    return arrays


# -- convolution, pooling, dropout and the fused losses (ember/ops/conv.py, dropout.py, loss.py) --
# The references are written independently of ember's kernels: a shift-and-add over the kernel
# offsets, which jax differentiates on its own for the jax.vjp oracle.


def _pad_hw(xp: Any, x: Any, pads: Any, value: float = 0.0) -> Any:
    return xp.pad(x, ((0, 0), (0, 0), *pads), constant_values=value)


def _conv_ref(xp: Any, x: Any, w: Any, b: Any = None, stride: Any = (1, 1),
             pads: Any = ((0, 0), (0, 0)), dil: Any = (1, 1)) -> Any:
    xpad = _pad_hw(xp, x, pads)
    kh, kw = w.shape[2:]
    p = (xpad.shape[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    q = (xpad.shape[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = 0
    for i in range(kh):
        for j in range(kw):
            part = xpad[:, :, i * dil[0]: i * dil[0] + stride[0] * (p - 1) + 1: stride[0],
                        j * dil[1]: j * dil[1] + stride[1] * (q - 1) + 1: stride[1]]
            out = out + xp.einsum("nchw,oc->nohw", part, w[:, :, i, j])
    return out if b is None else out + b.reshape(1, -1, 1, 1)


def _pool_ref(xp: Any, x: Any, kernel: Any, stride: Any, pad: Any, kind: str) -> Any:
    xpad = _pad_hw(xp, x, ((pad[0], pad[0]), (pad[1], pad[1])), -np.inf if kind == "max" else 0.0)
    p = (xpad.shape[2] - kernel[0]) // stride[0] + 1
    q = (xpad.shape[3] - kernel[1]) // stride[1] + 1
    parts = [xpad[:, :, i: i + stride[0] * (p - 1) + 1: stride[0],
                  j: j + stride[1] * (q - 1) + 1: stride[1]]
             for i in range(kernel[0]) for j in range(kernel[1])]
    if kind == "max":
        out = parts[0]
        for part in parts[1:]:
            out = xp.maximum(out, part)
        return out
    return sum(parts[1:], parts[0]) / (kernel[0] * kernel[1])


def _grouped_conv_ref(xp: Any, x: Any, w: Any, groups: int, **kw: Any) -> Any:
    """A grouped convolution as ``groups`` separate ones, concatenated."""
    c, o = x.shape[1] // groups, w.shape[0] // groups
    return xp.concatenate([_conv_ref(xp, x[:, i * c:(i + 1) * c], w[i * o:(i + 1) * o], **kw)
                           for i in range(groups)], axis=1)


def _taps(xp: Any, xpad: Any, kernel: Any, stride: Any, dil: Any, out: Any) -> list[Any]:
    return [xpad[:, :, i * dil[0]: i * dil[0] + stride[0] * (out[0] - 1) + 1: stride[0],
                 j * dil[1]: j * dil[1] + stride[1] * (out[1] - 1) + 1: stride[1]]
            for i in range(kernel[0]) for j in range(kernel[1])]


def _pool_ref_full(xp: Any, x: Any, kernel: Any, stride: Any, pads: Any, dil: Any, out: Any,
                   kind: str, count_include_pad: bool = True) -> Any:
    """Pooling with per-side padding, dilation and an explicit output size (ceil_mode: the
    extra rows and columns are padding that never counts); the divisor of average pooling is
    the same pooling over a mask of what counts."""
    extra = [(lo, hi + max(0, (o - 1) * s + d * (k - 1) + 1 - (n + lo + hi)))
             for n, (lo, hi), k, s, d, o in zip(x.shape[2:], pads, kernel, stride, dil, out)]
    fill = -np.inf if kind == "max" else 0.0
    parts = _taps(xp, _pad_hw(xp, x, extra, fill), kernel, stride, dil, out)
    if kind == "max":
        return xp.max(xp.stack(parts), axis=0)
    mask = np.ones((1, 1, *x.shape[2:])) if not count_include_pad else \
        np.pad(np.ones((1, 1, *x.shape[2:])), ((0, 0), (0, 0), *pads), constant_values=1.0)
    extra_mask = [(lo - (lo if count_include_pad else 0), hi2 - (hi if count_include_pad else 0))
                  for (lo, hi), (_, hi2) in zip(pads, extra)]
    count = sum(_taps(np, np.pad(mask, ((0, 0), (0, 0), *extra_mask)), kernel, stride, dil, out))
    return sum(parts[1:], parts[0]) / count


def _adaptive_ref(xp: Any, x: Any, size: Any, kind: str) -> Any:
    """PyTorch's adaptive windows, one slice reduction per output element."""
    fn = xp.max if kind == "max" else xp.mean
    rows = []
    for i in range(size[0]):
        r0, r1 = (i * x.shape[2]) // size[0], -(-((i + 1) * x.shape[2]) // size[0])
        rows.append(xp.stack([fn(x[:, :, r0:r1, (j * x.shape[3]) // size[1]:
                                   -(-((j + 1) * x.shape[3]) // size[1])], axis=(2, 3))
                              for j in range(size[1])], axis=-1))
    return xp.stack(rows, axis=-2)


def _dropout_ref(xp: Any, x: Any, p: float, seed: int) -> Any:
    bk = ember.backend.get()  # the same draw as ember's, made by the active backend
    keep = bk.to_numpy(bk.uniform(bk.key(seed), tuple(x.shape), x.dtype)) >= p
    return x * (keep.astype(x.dtype) * (1.0 / (1.0 - p)))


SCE_LABELS = {(3,): np.array([0, 3, 1]), (2, 3): np.array([[1, 0, 2], [3, 3, 0]])}

ROWS += [
    Row("conv2d", lambda x, w: ember.conv2d(x, w), lambda xp, x, w: _conv_ref(xp, x, w),
        [((2, 3, 5, 5), (4, 3, 3, 3)), ((1, 2, 6, 5), (3, 2, 2, 3))]),
    Row("conv2d", lambda x, w, b: ember.conv2d(x, w, b, stride=2, padding=1, dilation=2),
        lambda xp, x, w, b: _conv_ref(xp, x, w, b, (2, 2), ((1, 1), (1, 1)), (2, 2)),
        [((2, 3, 5, 5), (4, 3, 3, 3), (4,)), ((1, 2, 6, 7), (3, 2, 2, 3), (3,))]),
    Row("conv2d", lambda x, w: ember.conv2d(x, w, padding="same"),  # even kernel: pad (0, 1)
        lambda xp, x, w: _conv_ref(xp, x, w, pads=((0, 1), (1, 1))),
        [((1, 2, 5, 4), (3, 2, 2, 3))]),
    Row("conv2d", lambda x, w: ember.conv2d(x, w, padding="same", dilation=2),
        lambda xp, x, w: _conv_ref(xp, x, w, pads=((1, 1), (2, 2)), dil=(2, 2)),
        [((1, 2, 5, 5), (2, 2, 2, 3))]),
    Row("conv2d", lambda x, w: ember.conv2d(x, w, stride=(2, 1), padding=((1, 0), (2, 1))),
        lambda xp, x, w: _conv_ref(xp, x, w, stride=(2, 1), pads=((1, 0), (2, 1))),
        [((2, 2, 5, 4), (3, 2, 3, 2))]),
    Row("max_pool2d", lambda x: ember.max_pool2d(x, 3, stride=2, padding=1),  # overlapping
        lambda xp, x: _pool_ref(xp, x, (3, 3), (2, 2), (1, 1), "max"), [((2, 3, 5, 5),)]),
    Row("max_pool2d", lambda x: ember.max_pool2d(x, 2), lambda xp, x: _pool_ref(
        xp, x, (2, 2), (2, 2), (0, 0), "max"), [((2, 2, 4, 4),), ((1, 3, 5, 3),)]),
    Row("max_pool2d", lambda x: ember.max_pool2d(x, (2, 3), stride=1, padding=(1, 0)),
        lambda xp, x: _pool_ref(xp, x, (2, 3), (1, 1), (1, 0), "max"), [((1, 2, 4, 5),)]),
    Row("avg_pool2d", lambda x: ember.avg_pool2d(x, 3, stride=2, padding=1),
        lambda xp, x: _pool_ref(xp, x, (3, 3), (2, 2), (1, 1), "avg"), [((2, 3, 5, 5),)]),
    Row("avg_pool2d", lambda x: ember.avg_pool2d(x, 2), lambda xp, x: _pool_ref(
        xp, x, (2, 2), (2, 2), (0, 0), "avg"), [((2, 2, 4, 4),), ((1, 3, 5, 3),)]),
    Row("avg_pool2d", lambda x: ember.avg_pool2d(x, (2, 3), stride=(1, 2), padding=(1, 1)),
        lambda xp, x: _pool_ref(xp, x, (2, 3), (1, 2), (1, 1), "avg"), [((1, 2, 4, 5),)]),
    Row("conv2d", lambda x, w, b: ember.conv2d(x, w, b, padding=1, groups=2),  # grouped
        lambda xp, x, w, b: _grouped_conv_ref(xp, x, w, 2, pads=((1, 1), (1, 1)))
        + b.reshape(1, -1, 1, 1), [((2, 4, 5, 5), (6, 2, 3, 3), (6,))]),
    Row("conv2d", lambda x, w: ember.conv2d(x, w, stride=(1, 2), dilation=(2, 1), groups=3),
        lambda xp, x, w: _grouped_conv_ref(xp, x, w, 3, stride=(1, 2), dil=(2, 1)),  # depthwise
        [((2, 3, 6, 5), (3, 1, 2, 2))]),
    Row("conv1d", lambda x, w, b: ember.conv1d(x, w, b, stride=2, padding=(1, 2), dilation=2),
        lambda xp, x, w, b: _conv_ref(xp, x[:, :, None], w[:, :, None], b, (1, 2),
                                      ((0, 0), (1, 2)), (1, 2))[:, :, 0],
        [((2, 3, 9), (4, 3, 3), (4,))]),
    Row("conv1d", lambda x, w: ember.conv1d(x, w, padding="same", groups=2),
        lambda xp, x, w: _grouped_conv_ref(xp, x[:, :, None], w[:, :, None], 2,
                                           pads=((0, 0), (1, 2)))[:, :, 0],
        [((2, 4, 7), (2, 2, 4))]),
    Row("max_pool2d", lambda x: ember.max_pool2d(x, 3, 2, ((1, 0), (1, 1)), dilation=(1, 2),
                                                 ceil_mode=True),
        lambda xp, x: _pool_ref_full(xp, x, (3, 3), (2, 2), ((1, 0), (1, 1)), (1, 2), (4, 3),
                                     "max"), [((2, 2, 8, 7),)]),
    Row("avg_pool2d", lambda x: ember.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
        lambda xp, x: _pool_ref_full(xp, x, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), (4, 4),
                                     "avg"), [((2, 2, 6, 6),)]),
    Row("avg_pool2d", lambda x: ember.avg_pool2d(x, (2, 3), (1, 2), ((1, 0), (0, 1)),
                                                 ceil_mode=True, count_include_pad=False,
                                                 dilation=(2, 1)),
        lambda xp, x: _pool_ref_full(xp, x, (2, 3), (1, 2), ((1, 0), (0, 1)), (2, 1), (4, 3),
                                     "avg", count_include_pad=False), [((1, 2, 5, 5),)]),
    Row("adaptive_avg_pool2d", lambda x: ember.adaptive_avg_pool2d(x, (3, 2)),
        lambda xp, x: _adaptive_ref(xp, x, (3, 2), "avg"), [((2, 2, 7, 5),), ((1, 2, 6, 4),)]),
    Row("adaptive_max_pool2d", lambda x: ember.adaptive_max_pool2d(x, (3, 2)),
        lambda xp, x: _adaptive_ref(xp, x, (3, 2), "max"), [((2, 2, 7, 5),), ((1, 2, 6, 4),)]),
    Row("dropout", lambda x: ember.dropout(x, 0.3, ember.backend.get().key(7)),
        lambda xp, x: _dropout_ref(xp, x, 0.3, 7), [((4, 5),), ((2, 3, 4),)]),
    Row("dropout", lambda x: ember.dropout(x.tanh(), 0.75, ember.backend.get().key(1)),
        lambda xp, x: _dropout_ref(xp, xp.tanh(x), 0.75, 1), [((20,),)]),
    Row("softmax_cross_entropy",
        lambda a: ember.softmax_cross_entropy(a, SCE_LABELS[a.shape[:-1]]),
        lambda xp, a: -xp.take_along_axis(_log_softmax_ref(xp, a),
                                          SCE_LABELS[a.shape[:-1]][..., None], axis=-1)[..., 0],
        [((3, 4),), ((2, 3, 4),)]),
    Row("softmax_cross_entropy", lambda a, b: ember.softmax_cross_entropy(a, b.softmax()),
        lambda xp, a, b: -xp.sum(_softmax_ref(xp, b) * _log_softmax_ref(xp, a), axis=-1),
        [((3, 4), (3, 4)), ((2, 3, 4), (2, 3, 4))]),
    Row("binary_cross_entropy_with_logits",
        lambda a, b: ember.binary_cross_entropy_with_logits(a, b.sigmoid()),
        lambda xp, a, b: xp.logaddexp(0.0, a) - a / (1 + xp.exp(-b)), BINARY, domain="wide"),
    Row("binary_cross_entropy_with_logits",  # pos_weight, one per class on the last axis
        lambda a, b, c: ember.binary_cross_entropy_with_logits(a, b.sigmoid(), c.exp()),
        lambda xp, a, b, c: -(xp.exp(c) / (1 + xp.exp(-b)) * -xp.logaddexp(0.0, -a)
                              + (1 - 1 / (1 + xp.exp(-b))) * -xp.logaddexp(0.0, a)),
        [((3, 4), (3, 4), (4,)), ((2, 3), (2, 3), (1, 3))], domain="wide"),
]


# -- sequence ops (ember/ops/index.py, attention.py, linalg.py's einsum) ---------------------------
# Index arguments are fixed constants; the references use the library's own take/sort/einsum.

IDX = np.array([[0, 3, 3], [1, 1, 0], [2, 0, 2]])  # repeated indices: the gradient accumulates
TOKENS = np.array([[4, 0, 4, 2], [1, 4, 4, 3]])  # (2, 4) tokens into a (5, 3) table


def _sdpa_ref(xp: Any, q: Any, k: Any, v: Any, mask: Any = None, causal: bool = False,
              scale: float | None = None) -> Any:
    s = q @ xp.swapaxes(k, -1, -2) * (scale or 1 / np.sqrt(q.shape[-1]))
    if mask is not None:
        s = s + mask if mask.dtype.kind == "f" else xp.where(mask, s, -np.inf)
    if causal:
        s = xp.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    return _softmax_ref(xp, s) @ v


ATTN_MASK = np.array([[True, False, True, True, False, True]] * 4 + [[False] * 5 + [True]])

ROWS += [
    Row("take_along_axis", lambda a: a.take_along_axis(IDX, axis=1),
        lambda xp, a: xp.take_along_axis(a, IDX, axis=1), [((3, 4),)]),
    Row("take_along_axis", lambda a: ember.take_along_axis(a, ember.tensor(IDX[:2]), 0),
        lambda xp, a: xp.take_along_axis(a, IDX[:2], axis=0), [((4, 3),), ((4, 1),)]),
    Row("gather", lambda a: a.gather(0, IDX[:2, :2]),
        lambda xp, a: xp.take_along_axis(a[:, :2], IDX[:2, :2], axis=0), [((4, 3),)]),
    Row("gather", lambda a: ember.gather(a, -1, ember.tensor(IDX)),
        lambda xp, a: xp.take_along_axis(a, IDX, axis=-1), [((3, 4),)]),
    Row("embedding", lambda w: ember.embedding(ember.tensor(TOKENS), w),
        lambda xp, w: w[TOKENS], [((5, 3),)]),
    Row("embedding", lambda w: ember.embedding(TOKENS[0], w) * 2.0,
        lambda xp, w: w[TOKENS[0]] * 2.0, [((5, 2),)]),
    Row("one_hot", lambda a: ember.one_hot(a.argmax(axis=-1), 5),
        lambda xp, a: (xp.argmax(a, axis=-1)[..., None] == xp.arange(5)).astype(np.int64),
        [((3, 4),), ((2, 3, 4),)], grad=False),
    Row("masked_fill", lambda a: a.masked_fill(MASK, -2.0),
        lambda xp, a: xp.where(MASK, -2.0, a), [((3, 4),), ((4,),)]),
    Row("masked_fill", lambda a: ember.masked_fill(a, ember.tensor(MASK[0]), 0.5),
        lambda xp, a: xp.where(MASK[0], 0.5, a), [((3, 4),), ((2, 3, 4),)]),
    Row("tril", lambda a: a.tril(), lambda xp, a: xp.tril(a), [((3, 4),), ((2, 4, 3),)]),
    Row("tril", lambda a: a.tril(-1), lambda xp, a: xp.tril(a, -1), [((4, 4),)]),
    Row("triu", lambda a: a.triu(), lambda xp, a: xp.triu(a), [((3, 4),), ((2, 4, 3),)]),
    Row("triu", lambda a: ember.triu(a, 1), lambda xp, a: xp.triu(a, 1), [((4, 4),)]),
    Row("cumsum", lambda a: a.cumsum(axis=1), lambda xp, a: xp.cumsum(a, axis=1),
        [((3, 4),), ((2, 3, 4),)]),
    Row("cumsum", lambda a: a.cumsum(-3), lambda xp, a: xp.cumsum(a, axis=-3), [((2, 3, 4),)]),
    Row("cumsum", lambda a: a.cumsum(), lambda xp, a: xp.cumsum(a), [((3, 4),), ((5,),)]),
    Row("argsort", lambda a: a.argsort(), lambda xp, a: xp.argsort(a, axis=-1),
        [((3, 4),), ((7,),)], grad=False),
    Row("argsort", lambda a: a.argsort(axis=0, descending=True),
        lambda xp, a: xp.argsort(-a, axis=0), [((3, 4),)], grad=False),
    Row("sort", lambda a: a.sort()[0], lambda xp, a: xp.sort(a, axis=-1),
        [((3, 4),), ((2, 3, 5),)]),
    Row("sort", lambda a: a.sort(axis=0, descending=True)[0] * 2,
        lambda xp, a: -xp.sort(-a, axis=0) * 2, [((3, 4),)]),
    Row("topk", lambda a: a.topk(2)[0], lambda xp, a: -xp.sort(-a, axis=-1)[..., :2],
        [((3, 5),), ((2, 3, 4),), ((6,),)]),
    Row("topk", lambda a: a.topk(3, axis=0, largest=False)[0],
        lambda xp, a: xp.sort(a, axis=0)[:3], [((4, 3),), ((3, 2),)]),
    Row("einsum", lambda a, b: ember.einsum("ij,jk->ik", a, b),
        lambda xp, a, b: xp.einsum("ij,jk->ik", a, b), [((3, 4), (4, 5))]),
    Row("einsum", lambda a, b: ember.einsum("bhtd,bhsd->bhts", a, b),
        lambda xp, a, b: xp.einsum("bhtd,bhsd->bhts", a, b), [((2, 2, 3, 4), (2, 2, 5, 4))]),
    Row("einsum", lambda a, b: ember.einsum("ij,jk", a, b),  # implicit output: "ik"
        lambda xp, a, b: a @ b, [((3, 4), (4, 2))]),
    Row("einsum", lambda a, b: ember.einsum("...ij,jk->...ik", a, b),
        lambda xp, a, b: a @ b, [((2, 3, 4), (4, 2)), ((3, 4), (4, 2))]),
    Row("einsum", lambda a, b: ember.einsum("ij,k->k", a, b),  # i, j summed in a alone
        lambda xp, a, b: xp.sum(a) * b, [((3, 4), (5,))]),
    Row("einsum", lambda a, b, c: ember.einsum("i,ij,j->", a, b, c),
        lambda xp, a, b, c: a @ b @ c, [((3,), (3, 4), (4,))]),
    Row("einsum", lambda a, b: ember.einsum("ii,ij->j", a, b),  # a diagonal: a trace-like sum
        lambda xp, a, b: xp.einsum("ii,ij->j", a, b), [((3, 3), (3, 4))]),
    Row("einsum", lambda a: ember.einsum("iji->ij", a), lambda xp, a: xp.einsum("iji->ij", a),
        [((3, 2, 3),)]),
    Row("einsum", lambda a: ember.einsum("ijk->kij", a), lambda xp, a: xp.transpose(a, (2, 0, 1)),
        [((2, 3, 4),)]),
    Row("layer_norm", lambda a, w, b: ember.layer_norm(a, (4,), w, b),
        lambda xp, a, w, b: _ln_ref(xp, a, (-1,)) * w + b, [((3, 4), (4,), (4,))]),
    Row("layer_norm", lambda a: ember.layer_norm(a, (3, 4)) * 2.0,
        lambda xp, a: _ln_ref(xp, a, (-2, -1)) * 2.0, [((2, 3, 4),)]),
    Row("layer_norm", lambda a, w: ember.layer_norm(a, 4, w),
        lambda xp, a, w: _ln_ref(xp, a, (-1,)) * w, [((2, 3, 4), (4,))]),
    Row("scaled_dot_product_attention", ember.scaled_dot_product_attention, _sdpa_ref,
        [((2, 5, 4), (2, 6, 4), (2, 6, 3)), ((2, 2, 5, 4), (2, 2, 5, 4), (2, 2, 5, 4)),
         ((2, 5, 4), (6, 4), (6, 3))]),
    Row("scaled_dot_product_attention",
        lambda q, k, v: ember.scaled_dot_product_attention(q, k, v, is_causal=True),
        lambda xp, q, k, v: _sdpa_ref(xp, q, k, v, causal=True),
        [((2, 5, 4), (2, 5, 4), (2, 5, 3)), ((1, 2, 4, 3), (1, 2, 6, 3), (1, 2, 6, 2))]),
    Row("scaled_dot_product_attention",
        lambda q, k, v, m: ember.scaled_dot_product_attention(q, k, v, m, scale=0.3),
        lambda xp, q, k, v, m: _sdpa_ref(xp, q, k, v, m, scale=0.3),  # additive mask: a grad
        [((2, 5, 4), (2, 6, 4), (2, 6, 3), (5, 6)), ((2, 5, 4), (2, 6, 4), (2, 6, 3), (2, 1, 6))]),
    Row("scaled_dot_product_attention",
        lambda q, k, v: ember.scaled_dot_product_attention(q, k, v, attn_mask=ATTN_MASK),
        lambda xp, q, k, v: _sdpa_ref(xp, q, k, v, ATTN_MASK),
        [((2, 5, 4), (2, 6, 4), (2, 6, 3))]),
]
