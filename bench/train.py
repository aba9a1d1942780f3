"""Time whole training runs on the shipped MNIST subset: ember (NumPy and JAX) against PyTorch
eager and hand-written JAX + optax.

Workloads (float32, 4,000 training / 1,000 test images of ``load_mnist(subset="5k")``, softmax
cross-entropy from logits, Adam with lr 1e-3, shuffled every epoch, last partial batch dropped):

- W1: MLP 784-256-256-10 with ReLU, batch 128.
- W2: CNN conv(1->16, 3x3, pad 1)-ReLU-maxpool 2 - conv(16->32, 3x3, pad 1)-ReLU-maxpool 2 -
  flatten - dense(1568->10), batch 64.
- W3: MLP 784-32-32-10 with ReLU, batch 16 (a tiny model: the framework's per-step overhead
  dominates).

Implementations, all in the same run:

- ember-numpy: the eager loop ``loss = loss_fn(model(x), y); loss.backward(); opt.step();
  opt.zero_grad()`` over ``DataLoader`` batches on the NumPy backend.
- ember-jax step: the same step function under ``ember.jit`` (one compiled call per batch).
- ember-jax epoch: an ``ember.jit`` function that runs the whole epoch as one ``scan`` over
  device-resident batches (``DataLoader.epoch_arrays``) carrying ``ember.jit.state_slots``.
- ember Trainer variants: ``Trainer.fit(loader, epochs=1, verbose=0)`` for each epoch on NumPy,
  on JAX per step, and on JAX with ``steps_per_execution="epoch"``; the Trainer's step also
  accumulates the epoch's loss and keeps the old state when a loss is not finite.
- PyTorch eager (when ``import torch`` works): ``torch.nn`` modules and ``torch.optim.Adam``.
- JAX+optax step / JAX+optax scan (when jax and optax import): a pure loss function, ``jax.grad``,
  ``optax.adam``, one ``jax.jit`` call per batch, or the epoch as one jitted ``lax.scan``.

Every implementation starts from the same weights (ember's initialisation, copied) and visits the
same batches in the same order (``numpy.random.default_rng([seed, epoch])``, as ``DataLoader``).
Before timing, the loss of the first batch at the initial weights must agree between all of them
to 1e-5, and after the first epoch (compilation and warm-up, never timed) the weights must agree
to 2% (float32 Adam amplifies rounding in coordinates whose gradients are near zero; a different
computation would be off by 100%).

Then ``--rounds`` rounds: in each, every implementation trains ``--epochs`` more epochs and is
timed (in a rotating order: these machines are shared and noisy). Samples/s are the median over
rounds; each ratio is the median of per-round ratios. Test accuracy is measured after the timed
epochs. ``--accuracy`` instead trains W1 for 10 epochs, W2 for 3 and W3 for 10 from the start and
reports test accuracy against the targets (timing is printed too, but the rounds are not
interleaved).

Targets: ember-jax step >= 0.95x the JAX+optax step (W1-W3); ember-jax epoch >= 1.0x the
JAX+optax scan (W1, W3); ember-numpy >= 0.8x PyTorch eager on W1 and >= 1.0x on W3; ember's
fastest variant >= 0.7x PyTorch eager on W2; the Trainer's epoch mode >= 1.0x its step mode on
W2 (a CNN on CPU runs unrolled chunks of steps, not XLA's slow convolution loop); test accuracy
>= 93% for W1 after 10 epochs and >= 92% for W2 after 3 epochs, on both backends.

Run ``python bench/train.py`` (a few minutes), ``--quick`` for a smoke test (well under a minute),
``--accuracy`` for the accuracy targets, ``--workloads W1,W3`` to choose.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Measure this checkout's ember, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import ember  # noqa: E402
from ember import nn, optim  # noqa: E402
from ember.data import DataLoader, load_mnist  # noqa: E402
from ember.jit import state_slots  # noqa: E402

try:
    import torch
except ImportError:  # optional: the comparison is skipped, ember never depends on torch
    torch = None
try:
    import jax
    import jax.numpy as jnp
    import optax
    from jax import lax
except ImportError:  # optional peer (and ember's JAX backend)
    jax = None

SEED = 0
LR = 1e-3
SETTLE_S = 0.12  # OpenBLAS threads busy-wait ~0.1 s after a matmul: let them sleep first
ACCURACY_EPOCHS = {"W1": 10, "W2": 3, "W3": 10}
ACCURACY_TARGETS = {"W1": 0.93, "W2": 0.92}
STEP_TARGET, SCAN_TARGET, W2_TORCH_TARGET = 0.95, 1.0, 0.7
EPOCH_VS_STEP_TARGET = 1.0  # W2: compiled epochs never slower than steps
NUMPY_TORCH_TARGETS = {"W1": 0.8, "W3": 1.0}
TORCH_DEFAULT_THREADS = torch.get_num_threads() if torch is not None else 1
TORCH_THREADS: dict[str, int] = {}  # workload -> PyTorch's faster thread count (TorchEager.tune)


@dataclass
class Workload:
    name: str
    kind: str  # "mlp" or "cnn"
    sizes: tuple[int, ...]  # MLP layer sizes (unused for the CNN)
    batch: int
    epochs: int  # timed epochs per round (default)

    def describe(self) -> str:
        if self.kind == "mlp":
            return f"{self.name}: MLP {'-'.join(map(str, self.sizes))}, batch {self.batch}"
        return (f"{self.name}: CNN conv(1->16)-pool-conv(16->32)-pool-dense(1568->10), "
                f"batch {self.batch}")


WORKLOADS = {
    "W1": Workload("W1", "mlp", (784, 256, 256, 10), 128, 4),
    "W2": Workload("W2", "cnn", (), 64, 1),
    "W3": Workload("W3", "mlp", (784, 32, 32, 10), 16, 2),
}


@dataclass
class Data:
    x: np.ndarray  # (N, 784) or (N, 1, 28, 28) float32
    y: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch``: DataLoader's shuffle (seed SEED)."""
        return np.random.default_rng([SEED, epoch]).permutation(len(self.x))

    def batches(self, epoch: int, batch: int) -> list[np.ndarray]:
        order = self.order(epoch)
        steps = len(order) // batch
        return [order[i * batch:(i + 1) * batch] for i in range(steps)]


def load(kind: str, limit: int | None) -> Data:
    x, y = load_mnist(subset="5k")
    xt, yt = load_mnist(subset="5k", train=False)
    if limit:
        x, y = x[:limit], y[:limit]
    shape = (-1, 784) if kind == "mlp" else (-1, 1, 28, 28)
    return Data(x.reshape(shape), y, xt.reshape(shape), yt)


# -- the implementations ---------------------------------------------------------------------------

class Impl:
    """One implementation of a workload: trains epochs, reports weights, loss and accuracy."""

    name = ""
    family = ""  # "ember" or "peer"

    def __init__(self, wl: Workload, data: Data, init: dict[str, np.ndarray]) -> None:
        self.wl, self.data = wl, data
        self.epoch = 0
        self.rates: list[float] = []

    def train_epoch(self) -> None:
        """Train one epoch (the data order of epoch ``self.epoch``) and wait for the result."""
        raise NotImplementedError

    def weights(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    def accuracy(self) -> float:
        raise NotImplementedError


def ember_model(wl: Workload) -> nn.Module:
    if wl.kind == "mlp":
        layers: list[nn.Module] = []
        for a, b in zip(wl.sizes[:-2], wl.sizes[1:-1]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(wl.sizes[-2], wl.sizes[-1]))
    return nn.Sequential(
        nn.Conv2D(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2),
        nn.Flatten(), nn.Linear(1568, 10))


def initial_weights(wl: Workload) -> dict[str, np.ndarray]:
    """ember's default initialisation (PyTorch's scheme), drawn once and shared by everyone."""
    ember.set_backend("numpy")
    ember.manual_seed(SEED)
    return {k: np.asarray(v) for k, v in ember_model(wl).state_dict().items()}


class EmberImpl(Impl):
    family = "ember"
    backend_name = "numpy"

    def __init__(self, wl: Workload, data: Data, init: dict[str, np.ndarray]) -> None:
        super().__init__(wl, data, init)
        ember.set_backend(self.backend_name)
        self.model = ember_model(wl)
        self.model.load_state_dict(init)
        self.opt = optim.Adam(self.model.parameters(), lr=LR)
        self.loss_fn = nn.CrossEntropyLoss()
        self.loader = DataLoader((data.x, data.y), batch_size=wl.batch, shuffle=True,
                                 drop_last=True, seed=SEED)

    def step(self, model: nn.Module, opt: optim.Optimizer, x: ember.Tensor,
             y: ember.Tensor) -> ember.Tensor:
        loss = self.loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    def train_epoch(self) -> None:
        ember.set_backend(self.backend_name)
        self.loader.epoch, self.loader.position = self.epoch, 0
        loss = None
        for x, y in self.loader:
            loss = self.step(self.model, self.opt, x, y)
        assert loss is not None
        loss.numpy()  # wait for the last step (JAX dispatches asynchronously)
        self.epoch += 1

    def weights(self) -> dict[str, np.ndarray]:
        ember.set_backend(self.backend_name)
        return {k: np.asarray(ember.backend.get().to_numpy(v))
                for k, v in self.model.state_dict().items()}

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        ember.set_backend(self.backend_name)
        with ember.no_grad():
            return float(self.loss_fn(self.model(ember.tensor(x)), ember.tensor(y)).item())

    def accuracy(self) -> float:
        ember.set_backend(self.backend_name)
        self.model.eval()
        correct = 0
        with ember.no_grad():
            for i in range(0, len(self.data.x_test), 500):
                logits = self.model(ember.tensor(self.data.x_test[i:i + 500])).numpy()
                correct += int((logits.argmax(-1) == self.data.y_test[i:i + 500]).sum())
        self.model.train()
        return correct / len(self.data.x_test)


class EmberNumpy(EmberImpl):
    name = "ember-numpy"


class EmberJaxStep(EmberImpl):
    name = "ember-jax step"
    backend_name = "jax"

    def __init__(self, wl: Workload, data: Data, init: dict[str, np.ndarray]) -> None:
        super().__init__(wl, data, init)
        self.step = ember.jit(self.step)  # type: ignore[method-assign]


class EmberJaxEpoch(EmberImpl):
    name = "ember-jax epoch"
    backend_name = "jax"

    def __init__(self, wl: Workload, data: Data, init: dict[str, np.ndarray]) -> None:
        super().__init__(wl, data, init)
        one_step = self.step

        @ember.jit
        def run_epoch(model: nn.Module, opt: optim.Optimizer, xs: ember.Tensor,
                      ys: ember.Tensor) -> ember.Tensor:
            slots = state_slots(model, opt)

            def body(carry: list[Any], batch: tuple[Any, Any]) -> tuple[list[Any], Any]:
                slots.set(carry)
                loss = one_step(model, opt, ember.Tensor._make(batch[0], False, None),
                                ember.Tensor._make(batch[1], False, None))
                return slots.get(), loss.data

            final, losses = ember.backend.get().scan(body, slots.get(), (xs.data, ys.data))
            slots.set(final)
            return ember.Tensor._make(losses, False, None)

        self.run_epoch = run_epoch

    def train_epoch(self) -> None:
        ember.set_backend("jax")
        xs, ys = self.loader.epoch_arrays(self.epoch)
        self.run_epoch(self.model, self.opt, xs, ys).numpy()
        self.epoch += 1


class EmberTrainer(EmberImpl):
    """``Trainer.fit(loader, epochs=1, verbose=0)`` once per epoch, on the same DataLoader (its
    epoch counter sets the data order, ``drop_last=True`` as everywhere here)."""

    steps_per_execution: Any = 1

    def __init__(self, wl: Workload, data: Data, init: dict[str, np.ndarray]) -> None:
        super().__init__(wl, data, init)
        self.trainer = ember.train.Trainer(self.model, self.loss_fn, self.opt,
                                     steps_per_execution=self.steps_per_execution)

    def train_epoch(self) -> None:
        ember.set_backend(self.backend_name)
        self.loader.epoch, self.loader.position = self.epoch, 0
        self.trainer.fit(self.loader, epochs=1, verbose=0)
        self.epoch += 1


class TrainerNumpy(EmberTrainer):
    name = "ember-numpy Trainer"


class TrainerJaxStep(EmberTrainer):
    name = "ember-jax Trainer step"
    backend_name = "jax"


class TrainerJaxEpoch(EmberTrainer):
    name = "ember-jax Trainer epoch"
    backend_name = "jax"
    steps_per_execution = "epoch"


def trainer_available() -> bool:
    """Whether ``ember.train.Trainer.fit`` exists (it landed in parallel with this script)."""
    try:
        import ember.train
    except ImportError:
        return False
    return hasattr(ember.train.Trainer, "fit")


class TorchEager(Impl):
    name = "PyTorch eager"
    family = "peer"

    def __init__(self, wl: Workload, data: Data, init: dict[str, np.ndarray]) -> None:
        super().__init__(wl, data, init)
        tnn = torch.nn
        if wl.kind == "mlp":
            layers: list[Any] = []
            for a, b in zip(wl.sizes[:-2], wl.sizes[1:-1]):
                layers += [tnn.Linear(a, b), tnn.ReLU()]
            self.model = tnn.Sequential(*layers, tnn.Linear(wl.sizes[-2], wl.sizes[-1]))
        else:
            self.model = tnn.Sequential(
                tnn.Conv2d(1, 16, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                tnn.Conv2d(16, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                tnn.Flatten(), tnn.Linear(1568, 10))
        self.model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in init.items()})
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.x, self.y = torch.from_numpy(data.x), torch.from_numpy(data.y)
        self.threads = TORCH_THREADS.get(wl.name, torch.get_num_threads())

    @staticmethod
    def tune(wl: Workload, data: Data, init: dict[str, np.ndarray]) -> str:
        """Give PyTorch its faster thread count for this workload: 1 or its default.

        On a loaded 2-core machine, two OpenMP threads that wait for each other at every op can
        be several times slower than one; on an idle one, two win on the large matmuls. A
        throwaway model trains a warm-up epoch, then two epochs with each setting (best of two).
        """
        default = TORCH_DEFAULT_THREADS
        if default == 1:
            TORCH_THREADS[wl.name] = 1
            return "1 thread (torch's default)"
        probe = TorchEager(wl, data, init)
        probe.threads = default
        probe.train_epoch()
        best: dict[int, float] = {}
        for threads in (1, default, 1, default):
            probe.threads = threads
            t0 = time.perf_counter()
            probe.train_epoch()
            best[threads] = min(best.get(threads, float("inf")), time.perf_counter() - t0)
        TORCH_THREADS[wl.name] = min(best, key=lambda t: best[t])
        return (f"{TORCH_THREADS[wl.name]} thread(s): best epoch {best[1]:.3f} s with 1, "
                f"{best[default]:.3f} s with {default}")

    def train_epoch(self) -> None:
        torch.set_num_threads(self.threads)
        f = torch.nn.functional
        for idx in self.data.batches(self.epoch, self.wl.batch):
            i = torch.from_numpy(idx)
            loss = f.cross_entropy(self.model(self.x[i]), self.y[i])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        self.epoch += 1

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy().copy() for k, v in self.model.state_dict().items()}

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        with torch.no_grad():
            out = self.model(torch.from_numpy(x))
            return float(torch.nn.functional.cross_entropy(out, torch.from_numpy(y)))

    def accuracy(self) -> float:
        with torch.no_grad():
            logits = self.model(torch.from_numpy(self.data.x_test)).numpy()
        return float((logits.argmax(-1) == self.data.y_test).mean())


# -- hand-written JAX + optax ----------------------------------------------------------------------

def jax_forward(params: dict[str, Any], x: Any, wl: Workload) -> Any:
    """The workload's network as a pure function of ember-named parameters (same layouts)."""
    if wl.kind == "mlp":
        n = len(wl.sizes) - 1
        for i in range(n):
            x = x @ params[f"{2 * i}.weight"].T + params[f"{2 * i}.bias"]
            if i < n - 1:
                x = jax.nn.relu(x)
        return x

    def conv(x: Any, w: Any, b: Any) -> Any:
        y = lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return y + b[None, :, None, None]

    def pool(x: Any) -> Any:
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    x = pool(jax.nn.relu(conv(x, params["0.weight"], params["0.bias"])))
    x = pool(jax.nn.relu(conv(x, params["3.weight"], params["3.bias"])))
    x = x.reshape(x.shape[0], -1)
    return x @ params["7.weight"].T + params["7.bias"]


class JaxImpl(Impl):
    family = "peer"

    def __init__(self, wl: Workload, data: Data, init: dict[str, np.ndarray]) -> None:
        super().__init__(wl, data, init)
        self.params = {k: jnp.asarray(v) for k, v in init.items()}
        self.tx = optax.adam(LR)
        self.opt_state = self.tx.init(self.params)

        def loss_fn(params: Any, x: Any, y: Any) -> Any:
            logits = jax_forward(params, x, wl)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        def step(params: Any, opt_state: Any, x: Any, y: Any) -> Any:
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            updates, opt_state = self.tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        self.loss_fn, self.step_fn = jax.jit(loss_fn), step
        self.predict = jax.jit(lambda p, x: jax_forward(p, x, wl))

    def weights(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.params.items()}

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(self.loss_fn(self.params, jnp.asarray(x), jnp.asarray(y)))

    def accuracy(self) -> float:
        logits = np.asarray(self.predict(self.params, jnp.asarray(self.data.x_test)))
        return float((logits.argmax(-1) == self.data.y_test).mean())


class JaxStep(JaxImpl):
    name = "JAX+optax step"

    def __init__(self, wl: Workload, data: Data, init: dict[str, np.ndarray]) -> None:
        super().__init__(wl, data, init)
        self.jitted = jax.jit(self.step_fn, donate_argnums=(0, 1))

    def train_epoch(self) -> None:
        loss = None
        for idx in self.data.batches(self.epoch, self.wl.batch):
            x, y = jnp.asarray(self.data.x[idx]), jnp.asarray(self.data.y[idx])
            self.params, self.opt_state, loss = self.jitted(self.params, self.opt_state, x, y)
        jax.block_until_ready(loss)
        self.epoch += 1


class JaxScan(JaxImpl):
    name = "JAX+optax scan"

    def __init__(self, wl: Workload, data: Data, init: dict[str, np.ndarray]) -> None:
        super().__init__(wl, data, init)
        step_fn = self.step_fn

        def run_epoch(params: Any, opt_state: Any, xs: Any, ys: Any) -> Any:
            def body(carry: Any, batch: Any) -> Any:
                p, s, loss = step_fn(*carry, *batch)
                return (p, s), loss

            (params, opt_state), losses = lax.scan(body, (params, opt_state), (xs, ys))
            return params, opt_state, losses

        self.jitted = jax.jit(run_epoch, donate_argnums=(0, 1))

    def train_epoch(self) -> None:
        idx = np.stack(self.data.batches(self.epoch, self.wl.batch))
        xs, ys = jnp.asarray(self.data.x[idx]), jnp.asarray(self.data.y[idx])
        self.params, self.opt_state, losses = self.jitted(self.params, self.opt_state, xs, ys)
        jax.block_until_ready(losses)
        self.epoch += 1


# -- running ---------------------------------------------------------------------------------------

def make_impls(wl: Workload, data: Data, init: dict[str, np.ndarray],
               use_trainer: bool, jax_only: bool = False) -> list[Impl]:
    classes: list[type[Impl]] = [EmberNumpy]
    if jax is not None:
        classes += [EmberJaxStep, EmberJaxEpoch]
    if use_trainer:
        classes += [TrainerNumpy] + ([TrainerJaxStep, TrainerJaxEpoch] if jax else [])
    if torch is not None:
        classes.append(TorchEager)
    if jax is not None:
        classes += [JaxStep, JaxScan]
    if jax_only:
        classes = [c for c in classes if "jax" in c.name.lower()]
    return [cls(wl, data, init) for cls in classes]


def relative_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    num = sum(float(np.sum((a[k] - b[k]) ** 2)) for k in b)
    den = sum(float(np.sum(b[k] ** 2)) for k in b)
    return (num / den) ** 0.5


def check_same_math(impls: list[Impl], data: Data, wl: Workload) -> float:
    """All losses on the first batch at the initial weights agree; returns that loss."""
    idx = data.batches(0, wl.batch)[0]
    x, y = data.x[idx], data.y[idx]
    losses = {impl.name: impl.loss(x, y) for impl in impls}
    ref = losses[impls[0].name]
    for name, value in losses.items():
        if abs(value - ref) > 1e-5 * max(1.0, abs(ref)):
            raise SystemExit(f"{wl.name}: {name} computes loss {value!r} on the first batch, "
                             f"{impls[0].name} {ref!r}: they do not compute the same thing")
    return ref


def check_same_weights(impls: list[Impl], wl: Workload) -> float:
    """After the same epochs every implementation holds (nearly) the same weights."""
    ref = impls[0].weights()
    worst = 0.0
    for impl in impls[1:]:
        diff = relative_difference(impl.weights(), ref)
        if diff > 0.02:
            raise SystemExit(f"{wl.name}: after epoch {impls[0].epoch} the weights of {impl.name} "
                             f"differ from {impls[0].name}'s by {diff:.3g} (relative L2): they do "
                             f"not train the same way")
        worst = max(worst, diff)
    return worst


#: what timed_epochs reads: wall time, or the process's CPU time with --cpu-time (on a shared,
#: loaded machine the CPU seconds a run takes are far steadier than the wall seconds)
CLOCK = time.perf_counter


def timed_epochs(impl: Impl, epochs: int, samples: int) -> float:
    time.sleep(SETTLE_S)
    t0 = CLOCK()
    for _ in range(epochs):
        impl.train_epoch()
    rate = epochs * samples / (CLOCK() - t0)
    impl.rates.append(rate)
    return rate


def by_name(impls: list[Impl], name: str) -> Impl | None:
    return next((i for i in impls if i.name == name), None)


def ratio(a: Impl | None, b: Impl | None) -> float | None:
    if a is None or b is None:
        return None
    return statistics.median(x / y for x, y in zip(a.rates, b.rates))


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "n/a (peer not installed)"
    return f"{value:.2f}x (target >= {target}x: {'met' if value >= target else 'NOT met'})"


def run_workload(wl: Workload, args: argparse.Namespace, use_trainer: bool) -> None:
    data = load(wl.kind, args.limit)
    init = initial_weights(wl)
    torch_note = (TorchEager.tune(wl, data, init)
                  if torch is not None and not (args.quick or args.jax_only) else "")
    impls = make_impls(wl, data, init, use_trainer, args.jax_only)
    loss0 = check_same_math(impls, data, wl)
    samples = (len(data.x) // wl.batch) * wl.batch
    print(f"\n{wl.describe()}; {len(data.x)} training images ({samples} per epoch), "
          f"{len(data.x_test)} test images")
    if torch_note:
        print(f"PyTorch eager runs with {torch_note}")

    first: dict[str, float] = {}
    if args.accuracy:
        epochs = args.epochs or ACCURACY_EPOCHS[wl.name]
        for impl in impls:
            t0 = time.perf_counter()
            impl.train_epoch()
            first[impl.name] = time.perf_counter() - t0
            if epochs > 1:
                timed_epochs(impl, epochs - 1, samples)
        worst = check_same_weights(impls, wl)
        rounds_text = f"{epochs} epochs each, epochs 2..{epochs} timed"
    else:
        for impl in impls:  # warm-up epoch: compiles, never timed
            t0 = time.perf_counter()
            impl.train_epoch()
            first[impl.name] = time.perf_counter() - t0
        worst = check_same_weights(impls, wl)
        epochs = args.epochs or (1 if args.quick else wl.epochs)
        for r in range(args.rounds):
            k = r % len(impls)
            for impl in impls[k:] + impls[:k]:
                timed_epochs(impl, epochs, samples)
        rounds_text = (f"{args.rounds} interleaved rounds of {epochs} epoch(s) after 1 warm-up "
                       f"epoch; {1 + args.rounds * epochs} epochs trained in all")
    print(f"first-batch loss {loss0:.6f} in every implementation; weights after epoch 1 agree "
          f"to {worst:.1e} (relative L2); {rounds_text}")
    if not impls[0].rates:
        print("(one epoch only: nothing timed)")
        return
    print(f"{'implementation':<25}{'samples/s':>11}{'range':>19}{'1st epoch s':>13}"
          f"{'test acc':>10}")
    acc: dict[str, float] = {}
    for impl in impls:
        acc[impl.name] = impl.accuracy()
        lo, hi = min(impl.rates), max(impl.rates)
        print(f"{impl.name:<25}{statistics.median(impl.rates):>11,.0f}"
              f"{f'{lo:,.0f} - {hi:,.0f}':>19}{first[impl.name]:>13.2f}"
              f"{100 * acc[impl.name]:>9.1f}%")

    def get(name: str) -> Impl | None:
        return by_name(impls, name)

    lines = []
    for ember_name in ("ember-jax step", "ember-jax Trainer step"):
        if get(ember_name):
            lines.append(f"{ember_name} / JAX+optax step: "
                         f"{verdict(ratio(get(ember_name), get('JAX+optax step')), STEP_TARGET)}")
    if wl.name in ("W1", "W3"):
        for ember_name in ("ember-jax epoch", "ember-jax Trainer epoch"):
            if get(ember_name):
                r = ratio(get(ember_name), get("JAX+optax scan"))
                lines.append(f"{ember_name} / JAX+optax scan: {verdict(r, SCAN_TARGET)}")
        target = NUMPY_TORCH_TARGETS[wl.name]
        for ember_name in ("ember-numpy", "ember-numpy Trainer"):
            if get(ember_name):
                lines.append(f"{ember_name} / PyTorch eager: "
                             f"{verdict(ratio(get(ember_name), get('PyTorch eager')), target)}")
    if wl.name == "W2":
        ember_impls = [i for i in impls if i.family == "ember"]
        best = max(ember_impls, key=lambda i: statistics.median(i.rates))
        lines.append(f"{best.name} (ember's fastest) / PyTorch eager: "
                     f"{verdict(ratio(best, get('PyTorch eager')), W2_TORCH_TARGET)}")
        # a CNN on CPU: "epoch" runs unrolled chunks, never XLA's slow convolution loop
        r = ratio(get("ember-jax Trainer epoch"), get("ember-jax Trainer step"))
        if r is not None:
            lines.append(f"ember-jax Trainer epoch / ember-jax Trainer step: "
                         f"{verdict(r, EPOCH_VS_STEP_TARGET)}")
    for name, ref in (("ember-jax step", "JAX+optax step"), ("ember-jax Trainer step",
                                                             "ember-jax step"),
                      ("ember-jax Trainer epoch", "ember-jax epoch")):
        if get(name) and get(ref):
            us = [1e6 * wl.batch * (1 / statistics.median(i.rates)) for i in (get(name), get(ref))]
            lines.append(f"per step: {name} {us[0]:.0f} us, {ref} {us[1]:.0f} us: "
                         f"{us[0] - us[1]:+.0f} us")
    for trainer_name, manual_name in (("ember-numpy Trainer", "ember-numpy"),
                                      ("ember-jax Trainer step", "ember-jax step"),
                                      ("ember-jax Trainer epoch", "ember-jax epoch")):
        r = ratio(get(trainer_name), get(manual_name))
        if r is not None:
            lines.append(f"{trainer_name} / {manual_name} (the Trainer's overhead): {r:.2f}x")
    target_acc = ACCURACY_TARGETS.get(wl.name)
    if args.accuracy and target_acc is not None and epochs == ACCURACY_EPOCHS[wl.name]:
        for impl in impls:
            if impl.family == "ember":
                ok = "met" if acc[impl.name] >= target_acc else "NOT met"
                lines.append(f"{impl.name} test accuracy after {epochs} epochs: "
                             f"{100 * acc[impl.name]:.1f}% (target >= {100 * target_acc:.0f}%: "
                             f"{ok})")
    for line in lines:
        print("  " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="W1,W2,W3", help="comma-separated: W1,W2,W3")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default 3)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="timed epochs per round (with --accuracy: epochs in all)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 round of 1 epoch on 512 images, no Trainer variants, "
                        "PyTorch with its default threads")
    parser.add_argument("--accuracy", action="store_true",
                        help="train W1 10, W2 3, W3 10 epochs and check the accuracy targets")
    parser.add_argument("--limit", type=int, default=None, help="use only N training images")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU seconds, not wall seconds (steadier on "
                        "a loaded machine; samples/s are then per CPU-second)")
    parser.add_argument("--jax-only", action="store_true",
                        help="only the JAX implementations (ember-jax, Trainer on JAX, JAX+optax)")
    parser.add_argument("--no-trainer", action="store_true",
                        help="leave out the Trainer.fit variants")
    args = parser.parse_args()
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    if args.quick:
        args.rounds = args.rounds or 1
        args.limit = args.limit or 512
    args.rounds = args.rounds or 3
    names = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {sorted(WORKLOADS)}")
    use_trainer = trainer_available() and not args.no_trainer and not args.quick

    versions = [f"python {platform.python_version()}", f"numpy {np.__version__}"]
    if jax is not None:
        versions += [f"jax {jax.__version__}", f"optax {optax.__version__}"]
    if torch is not None:
        versions.append(f"torch {torch.__version__}")
    print(f"ember training benchmark: {', '.join(versions)}, {os.cpu_count()} CPUs")
    if not use_trainer:
        why = ("--no-trainer" if args.no_trainer else "--quick" if args.quick
               else "ember.train.Trainer is not available")
        print(f"(Trainer.fit variants left out: {why})")
    for name in names:
        run_workload(WORKLOADS[name], args, use_trainer)


if __name__ == "__main__":
    main()
