"""Small two-dimensional classification sets: spirals, ellipses, moons, circles, xor, blobs.

Every function returns ``(x, y)`` NumPy arrays: ``x`` float32 of shape ``(n, 2)`` and ``y`` int64 of
shape ``(n,)``. Classes are balanced (their sizes differ by at most one when ``n`` does not divide
evenly) and the rows are shuffled. Randomness comes from a local ``numpy.random.Generator`` made
from ``seed`` (never NumPy's global state): the same seed gives the same data; ``seed=None`` gives
fresh data each call. ``noise`` is the standard deviation of Gaussian noise added to both
coordinates after the labels are fixed (for :func:`blobs` it is the spread of each cluster).

Example:
    >>> from ember.data import two_spirals
    >>> x, y = two_spirals(100, noise=0.1, seed=0)
    >>> x.shape, x.dtype, y.shape, y.dtype, int(y.sum())
    ((100, 2), dtype('float32'), (100,), dtype('int64'), 50)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np  # data generation happens on the host; the DataLoader moves it to the backend

__all__ = ["two_spirals", "ellipses", "moons", "circles", "xor", "blobs"]


def _check(name: str, n: int, noise: float, classes: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < classes:
        raise ValueError(f"{name}: n must be an integer >= {classes} (one per class), got {n!r}")
    if not (isinstance(noise, (int, float, np.floating)) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"{name}: noise must be a finite number >= 0, got {noise!r}")


def _make(name: str, n: int, noise: float, seed: int | None, classes: int,
          draw: Callable[[np.random.Generator, int, int], np.ndarray]
          ) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``draw(rng, k, count)`` points for each class ``k``, add noise, shuffle."""
    _check(name, n, noise, classes)
    rng = np.random.default_rng(seed)
    counts = [n // classes + (k < n % classes) for k in range(classes)]
    x = np.concatenate([draw(rng, k, c) for k, c in enumerate(counts)])
    y = np.concatenate([np.full(c, k, dtype=np.int64) for k, c in enumerate(counts)])
    if noise:
        x = x + rng.normal(0.0, noise, size=x.shape)
    order = rng.permutation(n)
    return x[order].astype(np.float32), y[order]


def two_spirals(n: int = 200, noise: float = 0.0, seed: int | None = None,
                turns: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals (classes 0 and 1), each winding ``turns`` times out to radius 1.

    A point of class ``k`` at radius ``r`` (drawn uniformly in [0.05, 1]) lies at the angle
    ``2 * pi * turns * r + k * pi``: the radius grows with the angle, and the second spiral is the
    first turned by half a revolution.

    Example:
        >>> from ember.data import two_spirals
        >>> x, y = two_spirals(6, seed=1)
        >>> x.shape, sorted(y.tolist())
        ((6, 2), [0, 0, 0, 1, 1, 1])
    """
    def draw(rng: np.random.Generator, k: int, count: int) -> np.ndarray:
        r = rng.uniform(0.05, 1.0, count)
        angle = 2 * math.pi * turns * r + k * math.pi
        return np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)

    return _make("two_spirals", n, noise, seed, 2, draw)


def ellipses(n: int = 200, noise: float = 0.0, seed: int | None = None, classes: int = 2,
             axes: tuple[float, float] = (1.0, 0.5),
             angle: float = math.pi / 6) -> tuple[np.ndarray, np.ndarray]:
    """Nested elliptical rings: class ``k`` fills the ring between scales ``k/K`` and ``(k+1)/K``.

    All rings share the semi-axes ``axes = (a, b)`` and are turned by ``angle`` radians. In the
    ellipse's own frame (rotate a point back by ``angle``) the elliptical radius
    ``rho = sqrt((u/a)**2 + (v/b)**2)`` of a class-``k`` point lies in ``[k/K, (k+1)/K]``, and the
    points are spread uniformly over the ring's area. With ``classes=2``: a filled ellipse inside
    an elliptical ring, a boundary no straight line can draw.

    Example:
        >>> from ember.data import ellipses
        >>> x, y = ellipses(90, classes=3, seed=0)
        >>> [int((y == k).sum()) for k in range(3)]
        [30, 30, 30]
    """
    a, b = float(axes[0]), float(axes[1])
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise ValueError(f"ellipses: classes must be an integer >= 2, got {classes!r}")
    if not (a > 0 and b > 0):
        raise ValueError(f"ellipses: axes must be two positive lengths, got {axes!r}")
    c, s = math.cos(angle), math.sin(angle)

    def draw(rng: np.random.Generator, k: int, count: int) -> np.ndarray:
        lo, hi = k / classes, (k + 1) / classes
        rho = np.sqrt(rng.uniform(lo * lo, hi * hi, count))  # uniform over the ring's area
        phi = rng.uniform(0.0, 2 * math.pi, count)
        u, v = a * rho * np.cos(phi), b * rho * np.sin(phi)
        return np.stack([c * u - s * v, s * u + c * v], axis=1)

    return _make("ellipses", n, noise, seed, classes, draw)


def moons(n: int = 200, noise: float = 0.0,
          seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles of radius 1.

    Class 0 is the upper half circle around (0, 0); class 1 the lower half circle around
    (1, 0.5), reaching into the first one.

    Example:
        >>> from ember.data import moons
        >>> x, y = moons(50, noise=0.1, seed=0)
        >>> x.shape, int(y.sum())
        ((50, 2), 25)
    """
    def draw(rng: np.random.Generator, k: int, count: int) -> np.ndarray:
        t = rng.uniform(0.0, math.pi, count)
        if k == 0:
            return np.stack([np.cos(t), np.sin(t)], axis=1)
        return np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)

    return _make("moons", n, noise, seed, 2, draw)


def circles(n: int = 200, noise: float = 0.0, seed: int | None = None,
            factor: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric circles: class 0 of radius 1, class 1 of radius ``factor`` (0 < factor < 1).

    Example:
        >>> import numpy as np
        >>> from ember.data import circles
        >>> x, y = circles(8, seed=0)
        >>> np.round(np.hypot(x[:, 0], x[:, 1]), 4)[y == 1].tolist()
        [0.5, 0.5, 0.5, 0.5]
    """
    if not 0 < factor < 1:
        raise ValueError(f"circles: factor (inner radius / outer radius) must be in (0, 1), "
                         f"got {factor!r}")

    def draw(rng: np.random.Generator, k: int, count: int) -> np.ndarray:
        t = rng.uniform(0.0, 2 * math.pi, count)
        r = 1.0 if k == 0 else factor
        return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)

    return _make("circles", n, noise, seed, 2, draw)


def xor(n: int = 200, noise: float = 0.0,
        seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Points uniform in the four unit quadrants; class 1 where the signs of x and y differ.

    Each class fills its two quadrants equally (within one point). Labels are fixed before the
    noise is added, so noisy points near the axes may sit in the other class's quadrant.

    Example:
        >>> from ember.data import xor
        >>> x, y = xor(40, seed=0)
        >>> bool(((x[:, 0] * x[:, 1] < 0) == (y == 1)).all())
        True
    """
    def draw(rng: np.random.Generator, k: int, count: int) -> np.ndarray:
        sx = np.where(np.arange(count) % 2 == 0, 1.0, -1.0)
        sy = sx if k == 0 else -sx
        mag = rng.uniform(0.0, 1.0, (count, 2))
        return np.stack([sx * mag[:, 0], sy * mag[:, 1]], axis=1)

    return _make("xor", n, noise, seed, 2, draw)


def blobs(n: int = 200, centers: Any = 3, noise: float = 0.5, seed: int | None = None,
          radius: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters, one per class, of standard deviation ``noise``.

    Args:
        centers: the number of clusters, placed evenly on a circle of ``radius`` (the first at
            angle 0), or an explicit ``(k, 2)`` array of centres.

    Example:
        >>> from ember.data import blobs
        >>> x, y = blobs(9, centers=3, noise=0.0, seed=0)
        >>> x[y == 0].tolist()
        [[3.0, 0.0], [3.0, 0.0], [3.0, 0.0]]
    """
    if isinstance(centers, (int, np.integer)) and not isinstance(centers, bool):
        if centers < 1:
            raise ValueError(f"blobs: centers must be >= 1, got {centers}")
        t = 2 * math.pi * np.arange(centers) / centers
        where = np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)
    else:
        where = np.asarray(centers, dtype=np.float64)
        if where.ndim != 2 or where.shape[1] != 2 or len(where) == 0:
            raise ValueError(f"blobs: centers must be an int or a (k, 2) array, got shape "
                             f"{where.shape}")
    where = np.round(where, 12)  # cos(pi/2) is 6e-17: keep the centres clean

    def draw(rng: np.random.Generator, k: int, count: int) -> np.ndarray:
        return np.repeat(where[k:k + 1], count, axis=0)

    return _make("blobs", n, noise, seed, len(where), draw)
