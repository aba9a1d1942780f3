"""One process of a two-process data-parallel run on localhost: run by tests/test_distributed.py
(twice, with 2 CPU devices each: XLA_FLAGS=--xla_force_host_platform_device_count=2).

``python multi_process.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR``: joins the run through
``ember.distributed.initialize`` (JAX's coordination service and its CPU collectives), trains W1
for one epoch on a mesh over both processes' devices with a ModelCheckpoint, a CSVLogger and
progress output, then builds a fresh model and resumes from process 0's checkpoint for a second
epoch, two steps per compiled call (a scan over stacks of batches assembled from both
processes). Writes ``result-p<ID>.json`` and ``params-p<ID>-<phase>.npz`` to OUT_DIR.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def main(process_id: int, num_processes: int, port: int, out_dir: str) -> None:
    import numpy as np

    import ember
    from ember import distributed, nn, optim
    from ember.train.callbacks import CSVLogger, LambdaCallback, ModelCheckpoint

    ember.set_backend("jax")
    distributed.initialize(f"localhost:{port}", num_processes, process_id,
                           initialization_timeout=60)
    import jax

    out = Path(out_dir)
    result: dict = {"process_index": distributed.process_index(),
                    "process_count": distributed.process_count(),
                    "devices": jax.device_count(), "local_devices": jax.local_device_count()}
    x, y = ember.data.load_mnist(subset="5k")
    x, y = x[:512].reshape(-1, 784), y[:512]

    def run(epochs: int, resume: Path | None, tag: str) -> None:
        ember.manual_seed(0)
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                              nn.Linear(256, 10))
        trainer = ember.Trainer(model, "cross_entropy", optim.Adam(model.parameters(), 1e-3),
                                metrics=["accuracy"], devices="all",
                                steps_per_execution=2 if tag == "epoch2" else 1)
        losses: list[float] = []
        callbacks = [LambdaCallback(on_batch_end=lambda b, logs: losses.append(logs["loss"])),
                     ModelCheckpoint(out / f"ckpt-p{process_id}"),
                     CSVLogger(out / f"log-p{process_id}.csv")]
        history = trainer.fit(x, y, epochs=epochs, batch_size=128, verbose=2,
                              callbacks=callbacks, resume_from=resume)
        loader = trainer._train_loader
        xb, _ = next(iter(loader))
        result[tag] = {
            "losses": losses,
            "history": history.history,
            "replicated": all(v.sharding.is_fully_replicated for v in model.state_dict().values()),
            "mesh_size": trainer.mesh.size,
            "shard": list(loader.shard) if loader.shard else None,
            "local_rows": loader._rows(),
            "batch_shape": list(xb.shape),
            "batch_spec": [str(a) for a in tuple(xb.data.sharding.spec)],
            "batch_local_shards": len(xb.data.addressable_shards),
            "evaluate": trainer.evaluate(x[:256], y[:256], batch_size=64),
            "predict_row0": trainer.predict(x[:8], batch_size=8).numpy()[0].tolist(),
        }
        np.savez(out / f"params-p{process_id}-{tag}.npz",
                 **{k: np.asarray(v) for k, v in model.state_dict().items()})

    run(1, None, "epoch1")
    # every process resumes from process 0's checkpoint (written before save_checkpoint returned)
    run(2, out / "ckpt-p0", "epoch2")
    (out / f"result-p{process_id}.json").write_text(json.dumps(result))
    distributed.barrier("done")


if __name__ == "__main__":
    try:
        main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    except Exception:
        traceback.print_exc()
        sys.exit(1)
