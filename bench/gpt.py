"""Train nanoGPT's CPU example model and print training tokens/s for ember and its peers.

Workload (nanoGPT's documented CPU example on Tiny Shakespeare): a GPT with 4 layers, 4 heads,
128 channels, context 64, batch 12, vocabulary 65, no biases, no dropout; AdamW (betas 0.9/0.99,
weight decay 0.1 on matrices only), lr 1e-3 with 100 warm-up steps and cosine decay to 1e-4 over
2,000 steps, gradient clipping at global norm 1.0. Every implementation trains on the same
``TokenWindows`` batches (12 x 64 = 768 tokens a step).

Implementations, measured in the same run:

- ember-numpy: ``ember.models.GPT`` trained by a hand-written eager loop on the NumPy backend.
- ember-jax (jit): the same loop body compiled with ``ember.jit``, one step per call.
- ember-jax (jit, K steps): ``ember.jit`` over a Python loop of K steps on stacked batches
  (``TokenWindows.next_batches``): one dispatch per K steps.
- JAX+optax (by hand): the same model written as a function of a parameter dict, ``jax.jit`` of
  ``value_and_grad`` plus an optax chain (``clip_by_global_norm``, ``adamw`` with a mask).
- PyTorch eager (when ``import torch`` works): nanoGPT's model and recipe in this file.

Each implementation is warmed up (compilation excluded), then in each of ``--rounds`` rounds runs
``--steps`` steps, in a rotating order (the machines are shared and noisy); the table shows the
median tokens/s and the median of the per-round ratios. ``--train N`` then trains ember (on the
backend of ``--backend``) for N steps of the full recipe and prints the validation loss on 20
evaluation batches, with the time it took.

Targets (issue 13): ember-jax >= 3x PyTorch eager and >= 1.0x the hand-written JAX; ember-numpy
>= 1.0x PyTorch eager.

The table also gives each implementation's fraction of the GEMM limit: the matrix-product FLOPs
of a training step per token (:func:`flops_per_token`, 5.16 MFLOP) times tokens/s over the
float32 rate of a 1024^3 NumPy matmul measured in the same run (as ``bench/conv.py``), and what
3x PyTorch eager would need: above 100%, that target is out of reach on the machine.

Run it with ``python bench/gpt.py`` (a few minutes); ``--quick`` is a smoke test; ``--threads 1``
on a machine shared with other jobs.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

# Measure this checkout's ember, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import ember  # noqa: E402
from ember import optim  # noqa: E402
from ember.data import CharTokenizer, TokenWindows, load_tiny_shakespeare  # noqa: E402
from ember.models import GPT  # noqa: E402
from ember.nn import functional as F  # noqa: E402, N812 - PyTorch's spelling

try:
    import torch
except ImportError:  # optional: the comparison is skipped, ember never depends on torch
    torch = None

N_LAYER, N_HEAD, N_EMBD, BLOCK, BATCH = 4, 4, 128, 64, 12
LR, MIN_LR, WARMUP, DECAY_STEPS, WD, CLIP, BETAS = 1e-3, 1e-4, 100, 2000, 0.1, 1.0, (0.9, 0.99)
K = 5  # steps per dispatch for the multi-step ember-jax variant


def data(seed: int = 1337) -> tuple[CharTokenizer, TokenWindows, TokenWindows]:
    text = load_tiny_shakespeare()
    tok = CharTokenizer.from_text(text)
    train = TokenWindows(tok.encode(load_tiny_shakespeare("train")), BLOCK, BATCH, seed=seed)
    val = TokenWindows(tok.encode(load_tiny_shakespeare("val")), BLOCK, BATCH, seed=seed)
    return tok, train, val


# -- ember ---------------------------------------------------------------------------------------

def ember_setup(vocab: int, seed: int = 0) -> tuple[GPT, optim.Optimizer]:
    ember.manual_seed(seed)
    model = GPT(vocab, BLOCK, N_LAYER, N_HEAD, N_EMBD, dropout=0.0, bias=False)
    lr = optim.schedules.cosine_decay(LR, total_steps=DECAY_STEPS, final_lr=MIN_LR,
                                      warmup_steps=WARMUP)
    opt = optim.AdamW(optim.decay_groups(model, WD), lr=lr, betas=BETAS, clip_norm=CLIP)
    return model, opt


def lm_loss(logits: Any, y: Any) -> Any:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def train_step(model: GPT, opt: optim.Optimizer, x: Any, y: Any) -> Any:
    loss = lm_loss(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss


def train_steps(model: GPT, opt: optim.Optimizer, xs: Any, ys: Any) -> Any:
    total = 0.0
    for i in range(xs.shape[0]):  # unrolled into one compiled program
        total = total + train_step(model, opt, xs[i], ys[i])
    return total / xs.shape[0]


def eval_step(model: GPT, x: Any, y: Any) -> Any:
    with ember.no_grad():
        return lm_loss(model(x), y)


def ember_runner(backend: str, vocab: int, windows: TokenWindows,
                 per_call: int = 1) -> Callable[[int], float]:
    ember.set_backend(backend)
    model, opt = ember_setup(vocab)
    if per_call == 1:
        step = ember.jit(train_step) if backend == "jax" else train_step

        def run(n: int) -> float:
            ember.set_backend(backend)
            for _ in range(n):
                loss = step(model, opt, *windows.next())
            return float(loss.item())
    else:
        steps = ember.jit(train_steps)

        def run(n: int) -> float:
            ember.set_backend(backend)
            for _ in range(max(1, n // per_call)):
                loss = steps(model, opt, *windows.next_batches(per_call))
            return float(loss.item())
    return run


# -- JAX + optax, by hand --------------------------------------------------------------------------

def jax_runner(vocab: int, windows: TokenWindows) -> Callable[[int], float]:
    import jax
    import jax.numpy as jnp
    import optax

    key = jax.random.PRNGKey(0)
    keys = iter(jax.random.split(key, 64))
    std, proj_std = 0.02, 0.02 / math.sqrt(2 * N_LAYER)

    def normal(shape: tuple[int, ...], s: float = std) -> Any:
        return s * jax.random.normal(next(keys), shape, jnp.float32)

    params: dict[str, Any] = {"wte": normal((vocab, N_EMBD)), "wpe": normal((BLOCK, N_EMBD)),
                              "ln_f": jnp.ones(N_EMBD, jnp.float32)}
    for i in range(N_LAYER):
        params[f"h{i}"] = {
            "ln_1": jnp.ones(N_EMBD, jnp.float32), "ln_2": jnp.ones(N_EMBD, jnp.float32),
            "c_attn": normal((3 * N_EMBD, N_EMBD)),
            "attn_proj": normal((N_EMBD, N_EMBD), proj_std),
            "c_fc": normal((4 * N_EMBD, N_EMBD)),
            "mlp_proj": normal((N_EMBD, 4 * N_EMBD), proj_std),
        }

    def ln(x: Any, w: Any) -> Any:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / jnp.sqrt(var + 1e-5) * w

    def gelu(x: Any) -> Any:
        # exact GELU (PyTorch's default, as nanoGPT) through lax.erf: jax.nn.gelu(approximate=
        # False) goes through erfc, which XLA's CPU backend expands into code ~3x slower for the
        # MLP's forward+backward, and that alone made this peer ~2x slower than it needs to be
        return 0.5 * x * (1.0 + jax.lax.erf(x * (1.0 / math.sqrt(2.0))))

    def forward(p: dict[str, Any], idx: Any) -> Any:
        b, t = idx.shape
        x = p["wte"][idx] + p["wpe"][:t]
        mask = jnp.tril(jnp.ones((t, t), bool))
        for i in range(N_LAYER):
            h = p[f"h{i}"]
            qkv = (ln(x, h["ln_1"]) @ h["c_attn"].T).reshape(b, t, 3, N_HEAD, -1)
            q, k, v = qkv.transpose(2, 0, 3, 1, 4)
            att = (q @ k.swapaxes(-1, -2)) / math.sqrt(q.shape[-1])
            att = jax.nn.softmax(jnp.where(mask, att, -jnp.inf), axis=-1)
            y = (att @ v).transpose(0, 2, 1, 3).reshape(b, t, N_EMBD)
            x = x + y @ h["attn_proj"].T
            m = gelu(ln(x, h["ln_2"]) @ h["c_fc"].T)
            x = x + m @ h["mlp_proj"].T
        return ln(x, p["ln_f"]) @ p["wte"].T

    def loss_fn(p: dict[str, Any], x: Any, y: Any) -> Any:
        logits = forward(p, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    schedule = optax.warmup_cosine_decay_schedule(0.0, LR, WARMUP, DECAY_STEPS, MIN_LR)
    mask = jax.tree_util.tree_map(lambda a: a.ndim >= 2, params)
    tx = optax.chain(optax.clip_by_global_norm(CLIP),
                     optax.adamw(schedule, b1=BETAS[0], b2=BETAS[1], eps=1e-8, weight_decay=WD,
                                 mask=mask))
    state = {"params": params, "opt": tx.init(params)}

    @partial(jax.jit, donate_argnums=(0, 1))  # update parameters and moments in place
    def step(params: Any, opt_state: Any, x: Any, y: Any) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def run(n: int) -> float:
        loss = None
        for _ in range(n):
            starts = windows.starts()
            windows.step += 1
            index = starts[:, None] + np.arange(BLOCK)
            x, y = windows.tokens[index], windows.tokens[index + 1]
            state["params"], state["opt"], loss = step(state["params"], state["opt"], x, y)
        return float(loss)

    return run


# -- PyTorch eager -----------------------------------------------------------------------------

def torch_runner(vocab: int, windows: TokenWindows) -> Callable[[int], float]:
    nn = torch.nn
    tf = torch.nn.functional
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1 = nn.LayerNorm(N_EMBD, bias=False)
            self.c_attn = nn.Linear(N_EMBD, 3 * N_EMBD, bias=False)
            self.attn_proj = nn.Linear(N_EMBD, N_EMBD, bias=False)
            self.ln_2 = nn.LayerNorm(N_EMBD, bias=False)
            self.c_fc = nn.Linear(N_EMBD, 4 * N_EMBD, bias=False)
            self.mlp_proj = nn.Linear(4 * N_EMBD, N_EMBD, bias=False)

        def forward(self, x: Any) -> Any:
            b, t, c = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(N_EMBD, dim=2)
            q, k, v = (a.view(b, t, N_HEAD, c // N_HEAD).transpose(1, 2) for a in (q, k, v))
            y = tf.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, c))
            return x + self.mlp_proj(tf.gelu(self.c_fc(self.ln_2(x))))

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte = nn.Embedding(vocab, N_EMBD)
            self.wpe = nn.Embedding(BLOCK, N_EMBD)
            self.h = nn.ModuleList([Block() for _ in range(N_LAYER)])
            self.ln_f = nn.LayerNorm(N_EMBD, bias=False)
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    std = 0.02 / math.sqrt(2 * N_LAYER) if name.endswith("proj.weight") else 0.02
                    nn.init.normal_(p, 0.0, std)

        def forward(self, idx: Any) -> Any:
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for block in self.h:
                x = block(x)
            return self.ln_f(x) @ self.wte.weight.T

    model = Model()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                             {"params": no_decay, "weight_decay": 0.0}], lr=LR, betas=BETAS)
    it = [0]

    def get_lr(i: int) -> float:  # nanoGPT's train.py
        if i < WARMUP:
            return LR * i / WARMUP
        ratio = min(1.0, (i - WARMUP) / (DECAY_STEPS - WARMUP))
        return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (LR - MIN_LR)

    def run(n: int) -> float:
        loss = None
        for _ in range(n):
            for g in opt.param_groups:
                g["lr"] = get_lr(it[0])
            starts = windows.starts()
            windows.step += 1
            index = starts[:, None] + np.arange(BLOCK)
            x = torch.from_numpy(windows.tokens[index])
            y = torch.from_numpy(windows.tokens[index + 1])
            logits = model(x)
            loss = tf.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            opt.step()
            it[0] += 1
        return float(loss.item())

    return run


# -- measurement ---------------------------------------------------------------------------------

def flops_per_token(vocab: int) -> float:
    """Matrix-product FLOPs of one training step per token: forward (per layer the q/k/v,
    output and MLP projections, 2 * 12 * C^2, plus the scores and the weighted sum over the T keys
    of the dense causal attention, 2 * 2 * T * C; the tied head, 2 * C * V) and the backward,
    twice the forward (the gradients of both operands of each product). Elementwise work, the
    softmax, the norms and the optimizer are left out: this is a lower bound on the work."""
    per_layer = 2 * 12 * N_EMBD**2 + 2 * 2 * BLOCK * N_EMBD
    return 3.0 * (N_LAYER * per_layer + 2 * N_EMBD * vocab)


def gemm_rate() -> float:
    """float32 FLOP/s of a 1024^3 NumPy matmul on this machine (the best of a few), the same
    measure as bench/conv.py, on every core even under ``--threads``."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    best = 0.0
    with threadpool_limits(os.cpu_count() or 1, user_api="blas"):
        a @ a
        for _ in range(3):
            t0 = time.perf_counter()
            a @ a
            best = max(best, 2 * 1024**3 / (time.perf_counter() - t0))
    return best


def measure(rounds: int, steps: int, backends: list[str]) -> None:
    tok, _, _ = data()
    impls: dict[str, Callable[[int], float]] = {}
    for name, make in [
        ("ember-numpy", lambda w: ember_runner("numpy", tok.vocab_size, w)),
        ("ember-jax (jit)", lambda w: ember_runner("jax", tok.vocab_size, w)),
        (f"ember-jax (jit, {K} steps)", lambda w: ember_runner("jax", tok.vocab_size, w, K)),
        ("JAX+optax (by hand)", lambda w: jax_runner(tok.vocab_size, w)),
        ("PyTorch eager", lambda w: torch_runner(tok.vocab_size, w)),
    ]:
        if name.startswith("ember-numpy") and "numpy" not in backends:
            continue
        if "jax" in name.lower() and "jax" not in backends:
            continue
        if name.startswith("PyTorch") and torch is None:
            print("PyTorch is not installed: its line is skipped")
            continue
        _, windows, _ = data()
        run = make(windows)
        t0 = time.perf_counter()
        run(K * 2)  # compile / warm up
        print(f"{name}: warm-up {time.perf_counter() - t0:.1f} s", flush=True)
        impls[name] = run
    rates: dict[str, list[float]] = {name: [] for name in impls}
    names = list(impls)
    gemm = []
    for r in range(rounds):
        gemm.append(gemm_rate())
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            n = steps if "numpy" not in name and "PyTorch" not in name else max(K, steps // 2)
            n = (n // K) * K
            t0 = time.perf_counter()
            impls[name](n)
            rates[name].append(n * BATCH * BLOCK / (time.perf_counter() - t0))
    ref = "PyTorch eager" if "PyTorch eager" in rates else names[0]
    # the best round: what the machine can do when the other jobs on it leave it the cores
    limit, flops = max(gemm), flops_per_token(tok.vocab_size)
    print(f"\n{flops / 1e6:.2f} MFLOP/token in matrix products (fwd+bwd); float32 GEMM limit of "
          f"this machine {limit / 1e9:.0f} GFLOP/s (1024^3 NumPy matmul, best round) = "
          f"{limit / flops:,.0f} tokens/s")
    print(f"{'implementation':28s} {'tokens/s':>10s} {'vs ' + ref:>22s} {'of limit':>9s}")
    for name in names:
        ratio = statistics.median(a / b for a, b in zip(rates[name], rates[ref]))
        rate = statistics.median(rates[name])
        print(f"{name:28s} {rate:10.0f} {ratio:21.2f}x {rate * flops / limit:9.1%}")
    if ref == "PyTorch eager":
        need = 3 * statistics.median(rates[ref]) * flops / limit
        print(f"3x PyTorch eager would be {need:.0%} of the GEMM limit"
              + (": not reachable on this machine" if need > 1 else ""))
    if "JAX+optax (by hand)" in rates:
        for name in names:
            if name.startswith("ember-jax"):
                ratio = statistics.median(a / b for a, b in
                                          zip(rates[name], rates["JAX+optax (by hand)"]))
                print(f"{name} / JAX+optax (by hand): {ratio:.2f}x")


def train(steps: int, backend: str, eval_steps: int = 20) -> None:
    tok, windows, val = data()
    ember.set_backend(backend)
    model, opt = ember_setup(tok.vocab_size)
    step = ember.jit(train_step) if backend == "jax" else train_step
    evaluate = ember.jit(eval_step) if backend == "jax" else eval_step
    t0 = time.perf_counter()
    for i in range(steps):
        loss = step(model, opt, *windows.next())
        if (i + 1) % 250 == 0 or i + 1 == steps:
            val_loss = statistics.fmean(float(evaluate(model, x, y).item())
                                        for x, y in val.eval_batches(eval_steps))
            print(f"step {i + 1}: train loss {float(loss.item()):.4f}, val loss {val_loss:.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    ember.manual_seed(0)
    prompt = ember.tensor([tok.encode("\n").tolist()])
    print(tok.decode(model.generate(prompt, max_new_tokens=300, top_k=None)[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="steps per measurement")
    parser.add_argument("--backends", default="numpy,jax")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 1 round of 5 steps")
    parser.add_argument("--train", type=int, default=0, help="train N steps and report val loss")
    parser.add_argument("--backend", default="jax", help="the backend of --train")
    parser.add_argument("--threads", type=int, default=0,
                        help="limit NumPy's BLAS and PyTorch to this many threads (a machine "
                             "shared with other jobs punishes spinning BLAS threads)")
    args = parser.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
    if args.train:
        train(args.train, args.backend)
        return
    rounds, steps = (1, K) if args.quick else (args.rounds, args.steps)
    measure(rounds, steps, args.backends.split(","))


if __name__ == "__main__":
    main()
