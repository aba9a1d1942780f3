"""Check analytic gradients against central finite differences in float64."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np  # the finite-difference loop runs on the host, element by element

from ember import backend
from ember.tensor import Tensor

__all__ = ["gradcheck", "gradient_pairs", "GradcheckError"]


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree; the message names the input and the element.

    Example (``detach`` hides half of the gradient of ``t * t``):
        >>> import ember
        >>> x = ember.tensor([1.0, 2.0], requires_grad=True)
        >>> ember.gradcheck(lambda t: t * t.detach(), x)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ember.gradcheck.GradcheckError: gradcheck: input 0 (shape (2,)): worst element (1,) ...
    """


def gradient_pairs(fn: Callable[..., Tensor], *inputs: Any, eps: float = 1e-6,
                   seed: int = 0) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """The analytic and the numeric gradient of every checked input, as :func:`gradcheck`
    computes them: ``[(input index, analytic, numeric), ...]`` in float64.

    Example:
        >>> import ember
        >>> from ember.gradcheck import gradient_pairs
        >>> x = ember.tensor([1.0, 2.0], requires_grad=True)
        >>> [(i, a.shape, float(abs(a - n).max()) < 1e-8)
        ...  for i, a, n in gradient_pairs(lambda t: t * t, x)]
        [(0, (2,), True)]
    """
    bk = backend.get()
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input is a tensor with requires_grad=True")
    # C order: the central differences below write through reshape(-1) views, which would be
    # copies of a transposed input (a NumPy convolution's output is one)
    host = [np.array(inputs[i].numpy(), dtype=np.float64, order="C") for i in checked]

    def run(values: list[np.ndarray], grad: bool) -> Tensor:
        args = list(inputs)
        for i, v in zip(checked, values):
            args[i] = Tensor._make(bk.asarray(v, dtype=backend.float64), grad, None)
        out = fn(*args)
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
        return out, args  # type: ignore[return-value]

    out, args = run(host, True)  # type: ignore[misc]
    upstream = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(bk.asarray(upstream, dtype=out.dtype))

    def f(values: list[np.ndarray]) -> float:
        y, _ = run(values, False)  # type: ignore[misc]
        return float(np.sum(np.asarray(y.numpy(), dtype=np.float64) * upstream))

    pairs = []
    for pos, (i, x0) in enumerate(zip(checked, host)):
        g = args[i].grad
        analytic = np.zeros_like(x0) if g is None else np.asarray(g.numpy(), dtype=np.float64)
        numeric = np.zeros_like(x0)
        flat = numeric.reshape(-1)
        for j in range(x0.size):
            plus, minus = [v.copy() for v in host], [v.copy() for v in host]
            plus[pos].reshape(-1)[j] += eps
            minus[pos].reshape(-1)[j] -= eps
            flat[j] = (f(plus) - f(minus)) / (2 * eps)
        pairs.append((i, analytic, numeric))
    return pairs


def gradcheck(
    fn: Callable[..., Tensor],
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Compare ``backward()`` of ``fn(*inputs)`` with central differences, in float64.

    Every input that is a tensor with ``requires_grad=True`` is checked (as a float64 copy); other
    inputs are passed through unchanged. The output is contracted with a random upstream gradient
    (drawn from ``seed``), so every element of the Jacobian matters, not only its column sums.
    :func:`gradient_pairs` returns both gradients instead of judging them.

    Returns:
        True when every element satisfies ``|analytic - numeric| <= atol + rtol * |numeric|``.

    Raises:
        GradcheckError: naming the input, the index of the worst element, and both values.

    Example:
        >>> import ember
        >>> x = ember.tensor([0.5, -1.0, 2.0], requires_grad=True)
        >>> ember.gradcheck(lambda t: (t * t).tanh(), x)
        True
    """
    for i, analytic, numeric in gradient_pairs(fn, *inputs, eps=eps, seed=seed):
        err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if err.size and (np.max(err) > 0 or not np.all(np.isfinite(analytic))):
            worst = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(err), err, np.inf))),
                                     analytic.shape)
            raise GradcheckError(
                f"gradcheck: input {i} (shape {analytic.shape}): worst element "
                f"{tuple(map(int, worst))}"
                f" has analytic gradient {analytic[worst]:.6g} but numeric {numeric[worst]:.6g}"
                f" (|diff| {abs(analytic[worst] - numeric[worst]):.3g} > atol {atol:g} + rtol "
                f"{rtol:g} * |numeric|)"
            )
    return True
