"""ember.models: the GPT and the makemore ladder, sampling, and the training recipe pieces."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ember
from ember import optim
from ember.data import CharTokenizer, TokenWindows, load_tiny_shakespeare
from ember.models import GPT, GRULM, MLP, RNNLM, Bigram, sample_next
from ember.nn import functional as F  # noqa: N812 - PyTorch's spelling
from ember.optim import schedules


def tiny_gpt(**kw):
    args = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
    args.update(kw)
    return GPT(**args)


@ember.jit
def forward(model, idx):
    """``model(idx)``: compiled once per model and shape on JAX (eager op-by-op compilation of
    a first forward costs far more there), plain on NumPy."""
    return model(idx)


def lm_loss(logits, y):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def test_gpt_forward_shapes_and_errors(backend):
    ember.manual_seed(0)
    model = tiny_gpt()
    idx = ember.tensor(np.random.default_rng(0).integers(0, 11, (2, 8)))
    assert forward(model, idx).shape == (2, 8, 11)
    assert forward(model, idx[:, :5]).shape == (2, 5, 11)
    with pytest.raises(ValueError, match="a sequence of 9 tokens is longer than block_size=8; "
                                         "crop it to the last 8 tokens"):
        model(ember.zeros(1, 9, dtype="int64"))
    with pytest.raises(ValueError, match="n_embd=16 must be a multiple of n_head=3"):
        tiny_gpt(n_head=3)


def test_gpt_is_causal(backend):
    ember.manual_seed(1)
    model = tiny_gpt()
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 11, (2, 8))
    base = forward(model, ember.tensor(idx)).numpy()
    for j in range(1, 8):
        changed = idx.copy()
        changed[:, j:] = (changed[:, j:] + 1 + rng.integers(0, 9, changed[:, j:].shape)) % 11
        out = forward(model, ember.tensor(changed)).numpy()
        np.testing.assert_allclose(out[:, :j], base[:, :j], rtol=0, atol=1e-6)
        assert np.abs(out[:, j] - base[:, j]).max() > 1e-3  # the changed position does change


def test_gpt_weight_tying_one_parameter_gradient_from_both_uses(backend):
    ember.manual_seed(2)
    model = tiny_gpt(n_layer=1).double()
    names = [n for n, _ in model.named_parameters()]
    assert names.count("wte.weight") == 1 and not any("head" in n for n in names)
    rng = np.random.default_rng(2)
    x, y = (ember.tensor(rng.integers(0, 11, (2, 8))) for _ in range(2))
    lm_loss(model(x), y).backward()
    tied = model.wte.weight.grad.numpy()

    def split_loss(emb_w, head_w):  # GPT.forward with the two uses of wte given separately
        h = ember.embedding(x, emb_w) + model.wpe.weight[:8]
        for block in model.h:
            h = block(h)
        return lm_loss(model.ln_f(h) @ head_w.T, y)

    grads = []
    for use in ("emb", "head"):
        w = ember.tensor(model.wte.weight.numpy(), requires_grad=True)
        const = ember.tensor(model.wte.weight.numpy())
        split_loss(w, const).backward() if use == "emb" else split_loss(const, w).backward()
        grads.append(w.grad.numpy())
    assert np.abs(grads[0]).max() > 1e-4 and np.abs(grads[1]).max() > 1e-4
    np.testing.assert_allclose(tied, grads[0] + grads[1], rtol=1e-10, atol=1e-12)
    # and against central differences, in float64, on a few entries of the tied matrix
    for i, j in [(int(x.numpy()[0, 0]), 3), (int(y.numpy()[1, 2]), 7), (5, 0)]:
        w0 = model.wte.weight.numpy().copy()
        vals = []
        for sign in (1, -1):
            w = w0.copy()
            w[i, j] += sign * 1e-6
            model.wte.weight.data = ember.tensor(w).data
            vals.append(lm_loss(model(x), y).item())
        model.wte.weight.data = ember.tensor(w0).data
        assert abs((vals[0] - vals[1]) / 2e-6 - tied[i, j]) < 1e-6


def test_gpt_initialisation_statistics():
    ember.manual_seed(3)
    model = GPT(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=True)
    params = dict(model.named_parameters())
    resid = 0.02 / math.sqrt(2 * 4)
    for name, p in params.items():
        w = p.numpy()
        if name.endswith(("attn.out_proj.weight", "mlp.2.weight")):
            assert abs(w.std() / resid - 1) < 0.05, name
        elif p.ndim == 2:
            assert abs(w.std() / 0.02 - 1) < 0.05, name
            assert abs(w.mean()) < 0.002, name
        elif name.startswith("ln_f") or ".norm" in name:
            expected = 1.0 if name.endswith("weight") else 0.0
            assert (w == expected).all(), name
        else:
            assert name.endswith("bias") and (w == 0).all(), name
    assert {n for n in params if "norm1" in n} == {f"h.{i}.norm1.{k}" for i in range(4)
                                                    for k in ("weight", "bias")}
    assert sum(n.endswith(("out_proj.weight", "mlp.2.weight")) for n in params) == 8
    no_bias = GPT(vocab_size=65, block_size=8, n_layer=1, n_head=1, n_embd=8)
    assert not any(n.endswith("bias") for n, _ in no_bias.named_parameters())
    assert sum(p.size for p in no_bias.parameters()) == 65 * 8 + 8 * 8 + 2 * 8 + 8 \
        + 12 * 8 * 8


def test_gpt_untied_with_pytorch_init_is_makemores_transformer(backend):
    ember.manual_seed(3)
    model = GPT(vocab_size=27, block_size=16, n_layer=4, n_head=4, n_embd=64, bias=True,
                tie_weights=False, init="pytorch")
    params = dict(model.named_parameters())
    assert sum(p.size for p in params.values()) == 204_544  # makemore's "model #params"
    assert params["lm_head.weight"].shape == (27, 64) and "lm_head.bias" not in params
    for name, p in params.items():
        w = p.numpy()
        if name.startswith(("wte", "wpe")):
            assert abs(w.std() - 1) < 0.1 and abs(w.mean()) < 0.1, name
        elif p.ndim == 2:  # U(+-1/sqrt(fan_in)): std 1/sqrt(3 fan_in)
            bound = 1 / math.sqrt(w.shape[1])
            assert np.abs(w).max() <= bound and abs(w.std() * math.sqrt(3) / bound - 1) < 0.1
        elif name.endswith("bias"):
            assert (w == 0).all(), name
    idx = ember.tensor(np.random.default_rng(3).integers(0, 27, (2, 16)))
    h = model.wte(idx) + model.wpe.weight[:16]
    for block in model.h:
        h = block(h)
    np.testing.assert_allclose(forward(model, idx).numpy(),
                               (model.ln_f(h) @ model.lm_head.weight.T).numpy(), atol=1e-5)
    copy = GPT(**{k: v for k, v in model.config().items() if k != "name"})
    assert copy.config() == model.config() and not copy.tie_weights
    with pytest.raises(ValueError, match="GPT: init must be one of gpt2, pytorch, got 'xavier'"):
        tiny_gpt(init="xavier")


def test_sample_next_follows_the_softmax_and_respects_top_k(backend):
    ember.manual_seed(4)
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]] * 4000))
    draws = sample_next(ember.tensor(logits)).numpy()
    freq = np.bincount(draws, minlength=4) / draws.size
    np.testing.assert_allclose(freq, [0.5, 0.3, 0.15, 0.05], atol=0.03)
    top2 = sample_next(ember.tensor(logits), top_k=2).numpy()
    assert set(top2.tolist()) == {0, 1}
    assert abs((top2 == 0).mean() - 0.5 / 0.8) < 0.03  # renormalised over the two kept
    cold = sample_next(ember.tensor(logits), temperature=0.05).numpy()
    assert (cold == 0).mean() > 0.99
    assert sample_next(ember.tensor(logits[:2]), top_k=1).tolist() == [0, 0]
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        sample_next(ember.tensor(logits), temperature=0)


def test_generate_is_reproducible_from_the_seed_and_crops_the_context(backend):
    ember.manual_seed(5)
    model = tiny_gpt()
    prompt = ember.tensor([[1, 2, 3], [4, 5, 6]])
    ember.manual_seed(10)
    a = model.generate(prompt, max_new_tokens=12, top_k=5).numpy()
    ember.manual_seed(10)
    b = model.generate(prompt, max_new_tokens=12, top_k=5).numpy()
    ember.manual_seed(11)
    c = model.generate(prompt, max_new_tokens=12, top_k=5).numpy()
    assert a.shape == (2, 15) and (a[:, :3] == [[1, 2, 3], [4, 5, 6]]).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() < 11
    # top_k=1 is greedy: each token is the argmax of the logits of the last 8 tokens
    greedy = model.generate(prompt, max_new_tokens=8, top_k=1).numpy()
    for t in (8, 10):
        ctx = ember.tensor(greedy[:, max(0, t - 8):t])
        np.testing.assert_array_equal(greedy[:, t], forward(model, ctx).numpy()[:, -1].argmax(-1))
    assert model.training  # generate restores the mode


def test_ladder_models_shapes_and_generate(backend):
    ember.manual_seed(6)
    idx = ember.tensor(np.random.default_rng(6).integers(0, 27, (2, 7)))
    for model in (Bigram(27), MLP(27, block_size=3, n_embd=4, n_embd2=8),
                  RNNLM(27, n_embd=4, n_embd2=8), GRULM(27, n_embd=4, n_embd2=8)):
        if backend == "numpy":  # on JAX the forward is checked inside generate's program
            assert model(idx).shape == (2, 7, 27)
        out = model.generate(idx[:, :2], max_new_tokens=5, top_k=4)
        assert out.shape == (2, 7) and 0 <= out.numpy().min() and out.numpy().max() < 27


def test_mlp_sees_exactly_the_previous_block_size_tokens(backend):
    ember.manual_seed(7)
    model = MLP(10, block_size=3, n_embd=4, n_embd2=8)
    idx = np.array([[1, 2, 3, 4, 5, 6]])
    base = forward(model, ember.tensor(idx)).numpy()
    changed = idx.copy()
    changed[0, 1] = 9  # seen by positions 1, 2, 3 only
    out = forward(model, ember.tensor(changed)).numpy()
    diff = np.abs(out - base).max(axis=-1)[0]
    assert (diff[[0, 4, 5]] == 0).all() and (diff[[1, 2, 3]] > 1e-4).all()
    # position 0 sees the blank token three times: the same as a lone first token
    np.testing.assert_allclose(forward(model, ember.tensor(idx[:, :1])).numpy()[0, 0],
                               base[0, 0], rtol=1e-6)


def test_bigram_learns_the_count_table():
    ember.manual_seed(8)
    tokens = np.random.default_rng(8).integers(0, 4, 2000)
    x, y = ember.tensor(tokens[None, :-1]), ember.tensor(tokens[None, 1:])
    model = Bigram(4)
    opt = optim.Adam(model.parameters(), lr=0.1)
    for _ in range(300):
        loss = lm_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    counts = np.zeros((4, 4))
    np.add.at(counts, (tokens[:-1], tokens[1:]), 1)
    probs = counts / counts.sum(1, keepdims=True)
    learned = np.exp(model.logits.numpy())
    np.testing.assert_allclose(learned / learned.sum(1, keepdims=True), probs, atol=2e-3)


def test_decay_groups_put_weight_decay_on_matrices_only():
    ember.manual_seed(9)
    model = GPT(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=8, bias=True)
    decay, no_decay = optim.decay_groups(model, weight_decay=0.1)
    named = dict(model.named_parameters())
    ids = {id(p): n for n, p in named.items()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert sorted(ids[id(p)] for p in decay["params"]) == sorted(
        n for n, p in named.items() if p.ndim >= 2)
    assert {ids[id(p)].rsplit(".", 1)[-1] for p in no_decay["params"]} == {
        "weight", "bias", "in_proj_bias"}
    assert all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(named)
    with pytest.raises(ValueError, match="weight_decay must be a number >= 0, got -1"):
        optim.decay_groups(model, -1)


def test_cosine_decay_with_warmup_and_floor_is_nanogpts_get_lr():
    def get_lr(it, lr=1e-3, warmup=100, decay_iters=2000, min_lr=1e-4):  # nanoGPT's train.py
        if it < warmup:
            return lr * (it + 1) / (warmup + 1)
        if it > decay_iters:
            return min_lr
        ratio = (it - warmup) / (decay_iters - warmup)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)

    s = schedules.cosine_decay(1e-3, total_steps=2000, final_lr=1e-4, warmup_steps=100)
    for it in (100, 101, 500, 1000, 1999, 2000, 2500):
        assert abs(float(s(it)) - get_lr(it)) < 1e-12
    assert abs(float(s(0)) - 0.0) < 1e-12 and abs(float(s(50)) - 0.5e-3) < 1e-12


BLOCK, LR = 64, 1e-2


def overfit_text():
    return load_tiny_shakespeare()[:200]


def train_tiny_gpt(steps, step_fn=None, init=None):
    text = overfit_text()
    tok = CharTokenizer.from_text(text)
    windows = TokenWindows(tok.encode(text), block_size=BLOCK, batch_size=16, seed=0)
    ember.manual_seed(0)
    model = GPT(tok.vocab_size, block_size=BLOCK, n_layer=2, n_head=2, n_embd=32)
    if init is not None:
        model.load_state_dict(init)
    lr = schedules.cosine_decay(LR, total_steps=200, final_lr=LR / 10, warmup_steps=10)
    opt = optim.AdamW(optim.decay_groups(model, 0.01), lr=lr, betas=(0.9, 0.99), clip_norm=1.0)

    def step(model, opt, x, y):
        loss = lm_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    run = step if step_fn is None else step_fn(step)
    losses = []
    for _ in range(steps):
        x, y = windows.next()
        losses.append(float(run(model, opt, x, y).item()))
    return model, losses


def test_tiny_gpt_overfits_200_characters():
    model, losses = train_tiny_gpt(200)
    assert losses[0] > 3.0 and max(losses[-5:]) < 0.1, (losses[0], losses[-5:])


def test_tiny_gpt_on_jax_jit_equals_numpy_for_20_steps():
    ember.set_backend("numpy")
    ember.manual_seed(0)
    text = overfit_text()
    init = GPT(len(set(text)), block_size=BLOCK, n_layer=2, n_head=2, n_embd=32).state_dict()
    init = {k: np.asarray(v) for k, v in init.items()}
    np_model, np_losses = train_tiny_gpt(20, init=init)
    ember.set_backend("jax")
    jax_model, jax_losses = train_tiny_gpt(20, step_fn=ember.jit, init=init)
    np.testing.assert_allclose(jax_losses, np_losses, rtol=1e-4, atol=1e-4)
    for (name, a), (_, b) in zip(np_model.named_parameters(), jax_model.named_parameters()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


def test_a_hand_written_loop_resumed_from_state_dicts_equals_the_uninterrupted_run():
    text = overfit_text()
    tok = CharTokenizer.from_text(text)

    def setup():
        ember.manual_seed(0)
        model = GPT(tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
        lr = schedules.cosine_decay(1e-2, total_steps=10, final_lr=1e-3, warmup_steps=2)
        opt = optim.AdamW(optim.decay_groups(model, 0.1), lr=lr, clip_norm=1.0)
        windows = TokenWindows(tok.encode(text), block_size=16, batch_size=4, seed=1)
        return model, opt, windows

    def train(model, opt, windows, steps):
        for _ in range(steps):
            x, y = windows.next()
            loss = lm_loss(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
        return loss.item()

    model, opt, windows = setup()
    straight = train(model, opt, windows, 10)
    first = setup()
    train(*first, 4)
    saved = [{k: np.array(v) for k, v in obj.state_dict().items()} for obj in first[:2]]
    saved.append(first[2].state_dict())
    second = setup()
    for obj, state in zip(second, saved):
        obj.load_state_dict(state)
    assert train(*second, 6) == straight
    for (name, a), (_, b) in zip(model.named_parameters(), second[0].named_parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
