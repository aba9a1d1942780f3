"""MNIST digits with a multi-layer perceptron, on the 5,000-image subset shipped with ember.

Each 28x28 image is flattened to 784 pixel values in [0, 1]; the network maps them to 10 logits,
one per digit, trained with softmax cross-entropy and Adam. Expect about 95% test accuracy after 10
epochs (the subset has 4,000 training and 1,000 test images; no download is needed).

Run it (about ten seconds on NumPy; ``--backend jax`` compiles each step with XLA)::

    python examples/mnist_mlp.py
    python examples/mnist_mlp.py --epochs 3 --backend jax
"""

from __future__ import annotations

import argparse

import ember
from ember import nn, optim
from ember.data import load_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description="MNIST with an MLP.")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--backend", choices=["numpy", "jax"], default="numpy")
    parser.add_argument("--limit", type=int, default=None, help="use only N training images")
    args = parser.parse_args()

    ember.set_backend(args.backend)
    ember.manual_seed(0)

    # Images as float32 in [0, 1], labels as int64 digits; offline, from inside the package.
    x, y = load_mnist(subset="5k")
    x_test, y_test = load_mnist(subset="5k", train=False)
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    x, x_test = x.reshape(len(x), 784), x_test.reshape(len(x_test), 784)

    model = nn.Sequential(
        nn.Linear(784, 256, activation="relu"),
        nn.Dropout(0.2),  # active in training only: fit() switches the model to train mode
        nn.Linear(256, 256, activation="relu"),
        nn.Linear(256, 10),  # logits: CrossEntropyLoss applies the softmax itself
    )
    model.summary((784,))

    trainer = ember.Trainer(model, nn.CrossEntropyLoss(),
                            optim.Adam(model.parameters(), lr=1e-3), metrics=["accuracy"])
    # 10% of the training images are held out to watch for overfitting (val_loss, val_accuracy).
    trainer.fit(x, y, epochs=args.epochs, batch_size=128, validation_split=0.1)

    result = trainer.evaluate(x_test, y_test, verbose=0)
    print(f"test loss {result['loss']:.4f}, test accuracy {100 * result['accuracy']:.1f}%")


if __name__ == "__main__":
    main()
