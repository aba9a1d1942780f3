"""Data parallelism on one host: run by tests/test_distributed.py in a subprocess with 4 CPU
devices (XLA_FLAGS=--xla_force_host_platform_device_count=4, EMBER_BACKEND=jax).

Trains the same models on 1 device and on several, and prints one JSON object with what the
tests compare (differences, shardings, error messages). ``python single_host.py OUT_DIR``.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def main(out_dir: str) -> None:
    import jax
    import numpy as np

    import ember
    from ember import distributed, nn, optim
    from ember.data import DataLoader
    from ember.train.callbacks import LambdaCallback, ModelCheckpoint

    ember.set_backend("jax")
    assert jax.device_count() == 4, jax.devices()
    out: dict = {"devices": jax.device_count()}
    import time
    times: dict = {}
    clock = [time.perf_counter(), "start"]

    def _tick(name):
        now = time.perf_counter()
        times[clock[1]] = round(now - clock[0], 2)
        clock[:] = [now, name]

    x_all, y_all = ember.data.load_mnist(subset="5k")

    def host(model):
        return {k: np.asarray(jax.device_get(v)) for k, v in model.state_dict().items()}

    def max_diff(a, b):
        return float(max(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)).max()
                         for k in a))

    def w1():
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                             nn.Linear(256, 10))

    def w2():
        return nn.Sequential(nn.Conv2D(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2),
                             nn.Conv2D(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2),
                             nn.Flatten(), nn.Linear(1568, 10))

    def fit(build, x, y, batch, devices, epochs=1, spe=1, callbacks=(), resume=None):
        ember.manual_seed(0)
        model = build()
        trainer = ember.Trainer(model, "cross_entropy", optim.Adam(model.parameters(), 1e-3),
                                metrics=["accuracy"], devices=devices, steps_per_execution=spe)
        losses: list[float] = []
        cb = LambdaCallback(on_batch_end=lambda b, logs: losses.append(logs["loss"]))
        h = trainer.fit(x, y, epochs=epochs, batch_size=batch, verbose=0, shuffle=True,
                        callbacks=[cb, *callbacks], resume_from=resume)
        return trainer, model, losses, h.history

    # -- W1 and W2: 20 steps on 4 devices equal 1 device; evaluate and predict ---------------------
    _tick("w1_w2")
    cases = {
        "w1": (w1, x_all[:2560].reshape(-1, 784), y_all[:2560], 128),
        "w2": (w2, x_all[:1280].reshape(-1, 1, 28, 28), y_all[:1280], 64),
    }
    reference = {}
    for name, (build, x, y, batch) in cases.items():
        t1, m1, l1, h1 = fit(build, x, y, batch, None)
        t4, m4, l4, h4 = fit(build, x, y, batch, 4)
        reference[name] = (m1, l1)
        xe, ye = x_all[-500:].reshape(-1, *x.shape[1:]), y_all[-500:]
        e1, e4 = t1.evaluate(xe, ye, batch_size=100), t4.evaluate(xe, ye, batch_size=100)
        p1, p4 = t1.predict(xe[:250], batch_size=100), t4.predict(xe[:250], batch_size=100)
        traces = [t1.train_function.trace_count, t4.train_function.trace_count]
        batch_x, batch_y = next(iter(t4._train_loader))
        if name == "w1":  # what XLA made of the step: the gradients are summed over devices
            hlo = t4.train_function.lower(m4, t4.optimizer, batch_x, batch_y,
                                          t4._init_mstate(with_loss=False),
                                          ember.Tensor(True)).compile().as_text()
            out["all_reduce"] = "all-reduce" in hlo
        out[name] = {
            "steps": [len(l1), len(l4)],
            "loss_diff": float(np.max(np.abs(np.array(l1) - np.array(l4)))),
            "param_diff": max_diff(host(m1), host(m4)),
            "history": [h1, h4],
            "replicated": all(v.sharding.is_fully_replicated for v in m4.state_dict().values())
            and all(tuple(v.sharding.spec) == () for v in m4.state_dict().values()),
            "opt_replicated": all(a.sharding.is_fully_replicated for s in
                                  t4.optimizer.state.values() for a in s.values()),
            "batch_spec": [str(a) for a in tuple(batch_x.data.sharding.spec)],
            "batch_devices": len(batch_x.data.sharding.device_set),
            "traces": traces,
            "eval": [e1, e4],
            "pred_diff": float(np.abs(p1.numpy() - p4.numpy()).max()),
            "pred_shape": list(p4.shape),
        }

    # -- steps_per_execution with devices: a sharded scan over stacked batches -----------------
    _tick("scan")
    build, x, y, batch = cases["w1"]
    t4, m4, l4, _ = fit(build, x, y, batch, "all", spe=8)  # chunks of 8, 8 and 4 steps
    m1, l1 = reference["w1"]
    stacked = t4._train_loader.next_batches(2)
    out["scan"] = {"loss_diff": float(np.max(np.abs(np.array(l1) - np.array(l4)))),
                   "param_diff": max_diff(host(m1), host(m4)),
                   "steps": len(l4),
                   "scan_traces": t4.scan_function.trace_count,
                   "train_traces": t4.train_function.trace_count,
                   "stack_spec": [str(a) for a in tuple(stacked[0].data.sharding.spec)]}

    # -- the short last batch: split when it divides, replicated when it does not --------------
    _tick("short")
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((102, 20)).astype(np.float32)
    ys = rng.integers(0, 3, 102)

    def small():
        return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))

    _, m1, l1, _ = fit(small, xs, ys, 16, None)
    _, m4, l4, _ = fit(small, xs, ys, 16, 4)  # the last batch: 102 % 16 = 6 rows
    mesh = distributed.make_mesh("all")
    specs = {}
    for n in (100, 102):  # last batches of 4 rows (split over 4 devices) and of 6 (replicated)
        batches = list(DataLoader((xs[:n], ys[:n]), batch_size=16, mesh=mesh))
        specs[str(n)] = [[int(b[0].shape[0]), [str(a) for a in tuple(b[0].data.sharding.spec)]]
                         for b in batches[-2:]]
    out["short"] = {"steps": [len(l1), len(l4)], "param_diff": max_diff(host(m1), host(m4)),
                    "loss_diff": float(np.max(np.abs(np.array(l1) - np.array(l4)))),
                    "batches": specs}

    # -- a hand-written loop: ember.jit(mesh=...) and jax.set_mesh equal the unsharded loop ------
    _tick("jit")
    loss_fn = nn.SoftmaxCrossEntropy()

    def step(model, opt, x, y):
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    x64 = x_all[:640].reshape(-1, 784).astype(np.float64)

    def loop(kind):
        ember.manual_seed(0)
        model = w1()
        for p in model.parameters():  # float64: equal up to 1e-12 whatever the order of sums
            p.data = p.data.astype("float64")
        opt = optim.Adam(model.parameters(), 1e-3)
        fn = ember.jit(step, mesh=mesh if kind == "mesh" else None)
        losses = []
        for i in range(5):
            xb = ember.tensor(x64[i * 128:(i + 1) * 128])
            yb = ember.tensor(y_all[i * 128:(i + 1) * 128])
            if kind != "plain":
                xb, yb = distributed.shard_batch((xb, yb), mesh)
            if kind == "set_mesh":
                with jax.set_mesh(mesh):
                    losses.append(fn(model, opt, xb, yb).item())
            else:
                losses.append(fn(model, opt, xb, yb).item())
        return model, losses, fn, (opt, xb, yb)

    m_plain, l_plain, _, _ = loop("plain")
    m_mesh, l_mesh, f_mesh, (opt, xb, yb) = loop("mesh")
    m_set, l_set, f_set, _ = loop("set_mesh")
    out["jit"] = {
        "loss_diff": float(np.max(np.abs(np.array(l_plain) - np.array(l_mesh)))),
        "param_diff": max_diff(host(m_plain), host(m_mesh)),
        "set_mesh_loss_diff": float(np.max(np.abs(np.array(l_plain) - np.array(l_set)))),
        "set_mesh_param_diff": max_diff(host(m_plain), host(m_set)),
        "traces": [f_mesh.trace_count, f_set.trace_count],
        "replicated": all(v.sharding.is_fully_replicated for v in m_mesh.state_dict().values())
        and all(v.sharding.is_fully_replicated for v in m_set.state_dict().values()),
        "set_mesh_params_on_mesh": len(m_set.state_dict()["0.weight"].sharding.device_set),
        "batch_spec": [str(a) for a in tuple(xb.data.sharding.spec)],
        "dtype": str(m_mesh.state_dict()["0.weight"].dtype),
        "all_reduce": "all-reduce" in f_mesh.lower(m_mesh, opt, xb, yb).compile().as_text(),
    }

    # -- a checkpoint written on 4 devices resumes on 1 and on 2 ---------------------------------
    _tick("resume")
    xc, yc = x_all[:512].reshape(-1, 784), y_all[:512]

    def mlp():
        return nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))

    ckpt = Path(out_dir) / "ckpt4"
    _, m_full, l_full, h_full = fit(mlp, xc, yc, 128, 4, epochs=2)
    fit(mlp, xc, yc, 128, 4, epochs=1, callbacks=[ModelCheckpoint(ckpt)])
    resumed = {}
    for devices in (None, 2):
        _, m_r, l_r, h_r = fit(mlp, xc, yc, 128, devices, epochs=2, resume=ckpt)
        resumed[str(devices)] = (m_r, l_r, h_r)
    out["resume"] = {
        str(d): {"steps": len(l_r), "loss_diff": float(np.max(np.abs(np.array(l_full[4:]) -
                                                                  np.array(l_r)))),
                 "param_diff": max_diff(host(m_full), host(m_r)),
                 "history": h_r["loss"], "full_history": h_full["loss"]}
        for d, (m_r, l_r, h_r) in resumed.items()
    }
    out["resume"]["1_vs_2_param_diff"] = max_diff(host(resumed["None"][0]),
                                                  host(resumed["2"][0]))

    # -- bad inputs: the exact messages -----------------------------------------------------------
    _tick("errors")
    def error(fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - the type is reported too
            return f"{type(e).__name__}: {e}"
        return None

    def trainer(devices="all", **kw):
        return ember.Trainer(nn.Linear(4, 2), "cross_entropy", "sgd", devices=devices, **kw)

    xb4 = np.zeros((60, 4), np.float32)
    yb4 = np.zeros(60, np.int64)
    loader30 = DataLoader((xb4, yb4), batch_size=30)
    out["errors"] = {
        "fit": error(lambda: trainer().fit(xb4, yb4, batch_size=30, verbose=0)),
        "fit_loader": error(lambda: trainer().fit(loader30, verbose=0)),
        "evaluate": error(lambda: trainer().evaluate(xb4, yb4, batch_size=30)),
        "predict": error(lambda: trainer().predict(xb4, batch_size=30)),
        "dataloader": error(lambda: DataLoader(xb4, batch_size=30, mesh=mesh)),
        "shard_batch": error(lambda: distributed.shard_batch(xb4[:30], mesh)),
        "too_many": error(lambda: trainer(devices=8)),
        "zero": error(lambda: trainer(devices=0)),
        "name": error(lambda: trainer(devices="gpu")),
        "empty": error(lambda: trainer(devices=[])),
        "twice": error(lambda: trainer(devices=[jax.devices()[0], jax.devices()[0]])),
        "axis": error(lambda: trainer(devices=jax.make_mesh((4,), ("batch",)))),
        "jit_false": error(lambda: trainer(jit=False)),
    }
    # a list of devices and a mesh of one's own are taken as they are; Explicit axes (what
    # jax.make_mesh makes by default) become Auto ones
    out["two_devices"] = trainer(devices=jax.devices()[:2]).mesh.size
    out["given_mesh"] = trainer(devices=mesh).mesh is mesh
    explicit = jax.make_mesh((4,), ("data",))
    out["explicit_axes"] = [[t.name for t in m.axis_types] for m in
                            (explicit, trainer(devices=explicit).mesh)]

    def under_explicit():
        with jax.set_mesh(explicit):
            ember.jit(lambda t: t * 2)(ember.ones(4))

    out["errors"]["set_mesh_explicit"] = error(under_explicit)
    _tick("end")
    out["times"] = times
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception:
        traceback.print_exc()
        sys.exit(1)
