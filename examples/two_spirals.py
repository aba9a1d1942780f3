"""Two spirals: a small MLP learns to tell two interleaved spirals apart.

The classic toy problem that a linear model cannot solve. It is trained twice:

1. with ``ember.Trainer`` (Keras-style ``fit`` / ``evaluate``), and
2. with the one-line functional form ``ember.train_one_step`` in a plain Python loop (plain SGD,
   so it takes smaller batches and more steps than Adam to get as far).

Run it (a few seconds; add ``--backend jax`` to compile the steps with XLA)::

    python examples/two_spirals.py
    python examples/two_spirals.py --epochs 50 --backend jax
"""

from __future__ import annotations

import argparse

import ember
from ember import nn, optim
from ember.data import DataLoader, two_spirals


def make_model() -> nn.Module:
    # 2 inputs (the point's x and y) -> two hidden layers -> 2 logits (one per spiral).
    return nn.Sequential(
        nn.Linear(2, 64, activation="relu"),
        nn.Linear(64, 64, activation="relu"),
        nn.Linear(64, 2),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Two spirals with an MLP.")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--backend", choices=["numpy", "jax"], default="numpy")
    parser.add_argument("--limit", type=int, default=None, help="use only N training points")
    args = parser.parse_args()

    ember.set_backend(args.backend)
    ember.manual_seed(0)  # the same weights and data order every run

    # Float32 points of shape (n, 2) and int64 labels 0/1; the test set is drawn separately.
    x, y = two_spirals(1000, noise=0.05, seed=0)
    x_test, y_test = two_spirals(500, noise=0.05, seed=1)
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]

    # -- 1. the Trainer ----------------------------------------------------------------------------
    model = make_model()
    trainer = ember.Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-2),
                            metrics=["accuracy"])
    history = trainer.fit(x, y, epochs=args.epochs, batch_size=64, verbose=0)
    result = trainer.evaluate(x_test, y_test, verbose=0)
    print(f"Trainer: final training loss {history.history['loss'][-1]:.4f}")
    print(f"Trainer: test accuracy {100 * result['accuracy']:.1f}%")

    # -- 2. train_one_step: the whole training loop by hand ------------------------------------
    model = make_model()
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader((x, y), batch_size=32, shuffle=True, seed=0)
    for epoch in range(args.epochs):
        for xb, yb in loader:
            # One SGD step: forward, backward, update; returns the batch loss.
            loss = ember.train_one_step(model, loss_fn, 0.1, xb, yb)
        if (epoch + 1) % max(1, args.epochs // 5) == 0:
            print(f"train_one_step: epoch {epoch + 1:4d}  last batch loss {float(loss):.4f}")

    with ember.no_grad():
        model.eval()
        predicted = model(ember.tensor(x_test)).argmax(axis=-1).numpy()
    print(f"train_one_step: test accuracy {100 * (predicted == y_test).mean():.1f}%")


if __name__ == "__main__":
    main()
