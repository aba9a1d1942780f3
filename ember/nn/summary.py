"""``Module.summary``: a table of each layer's output shape and parameter counts, from one
forward pass on zeros (kept apart from the Module contract in ``module.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ember import backend
from ember.creation import zeros
from ember.function import no_grad
from ember.nn.module import Module
from ember.tensor import Tensor

__all__ = ["summary"]


def _output_shapes(model: Module, layers: list[Module], shape: tuple[int, ...], dtype: Any
                   ) -> dict[int, Any]:
    """``id(layer) -> its output shape`` for one eval-mode forward pass of ``model`` on zeros
    (each module's own train/eval mode restored after)."""
    shapes: dict[int, Any] = {}

    def hook(mod: Module, args: Any, out: Any) -> None:
        shapes[id(mod)] = out.shape if isinstance(out, Tensor) else type(out).__name__

    handles = [m.register_forward_hook(hook) for m in layers]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with no_grad():
            model(zeros(shape, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    return shapes


def _fmt(shape: Any) -> str:
    if not isinstance(shape, tuple):
        return str(shape)
    return "(" + ", ".join(["None", *map(str, shape[1:])]) + (",)" if len(shape) == 1 else ")")


def summary(self: Module, input_shape: tuple[int, ...], dtype: Any = None,
            print_fn: Callable[[str], Any] | None = print) -> str:
    """Print and return a table of each layer's output shape and parameter counts.

    Runs one forward pass on zeros of shape ``(1, *input_shape)`` (``input_shape`` is one
    sample's shape, without the batch axis) under ``no_grad`` in eval mode, so no running
    statistic or random key changes. The rows are the leaf layers (and any layer with its own
    parameters) in registration order; counts are of parameters (``requires_grad=False`` ones
    are non-trainable); buffers are not counted. Pass ``print_fn=None`` to only return it.

    Example:
        >>> from ember import nn
        >>> text = nn.Sequential(nn.Linear(4, 3), nn.ReLU()).summary((4,), print_fn=None)
        >>> print(text)  # doctest: +NORMALIZE_WHITESPACE
        Layer        Output shape   Params   Trainable
        ----------------------------------------------
        0 (Linear)   (None, 3)      15       15
        1 (ReLU)     (None, 3)      0        0
        ----------------------------------------------
        Total params: 15
        Trainable params: 15
        Non-trainable params: 0
    """
    params = list(self.parameters())
    if dtype is None:
        floats = [p.dtype for p in params if p.dtype.kind == "f"]
        dtype = floats[0] if floats else backend.default_float
    rows_mods = [(n, m) for n, m in self.named_modules()
                 if not m._modules or m._parameters]
    shapes = _output_shapes(self, [m for _, m in rows_mods], (1, *input_shape), dtype)
    fmt = _fmt

    table = []
    for name, m in rows_mods:
        own = [p for p in m._parameters.values() if p is not None]
        n_all = sum(p.size for p in own)
        n_train = sum(p.size for p in own if p.requires_grad)
        label = f"{name} ({type(m).__name__})" if name else type(m).__name__
        shape = fmt(shapes[id(m)]) if id(m) in shapes else "(not called)"
        table.append((label, shape, f"{n_all:,}", f"{n_train:,}"))
    header = ("Layer", "Output shape", "Params", "Trainable")
    widths = [max(len(r[i]) for r in [header, *table]) + 3 for i in range(4)]
    widths[-1] -= 3

    def line(r: tuple[str, ...]) -> str:
        return "".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()

    total = sum(p.size for p in params)
    trainable = sum(p.size for p in params if p.requires_grad)
    rule = "-" * sum(widths)
    out = "\n".join([line(header), rule, *map(line, table), rule,
                     f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                     f"Non-trainable params: {total - trainable:,}"])
    if print_fn is not None:
        print_fn(out)
    return out


Module.summary = summary  # type: ignore[method-assign]
