"""MNIST digits with a small convolutional network, on the subset shipped with ember.

Two 3x3 convolutions, each followed by ReLU and 2x2 max pooling, find local strokes and shapes;
a linear layer turns the 32 feature maps of 7x7 into 10 logits. Expect about 93% test accuracy
after 3 epochs on the 4,000 training images.

Run it (well under a minute on NumPy; ``--backend jax`` compiles each step with XLA)::

    python examples/mnist_cnn.py
    python examples/mnist_cnn.py --epochs 5 --backend jax
"""

from __future__ import annotations

import argparse

import ember
from ember import nn, optim
from ember.data import load_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description="MNIST with a CNN.")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backend", choices=["numpy", "jax"], default="numpy")
    parser.add_argument("--limit", type=int, default=None, help="use only N training images")
    args = parser.parse_args()

    ember.set_backend(args.backend)
    ember.manual_seed(0)

    x, y = load_mnist(subset="5k")
    x_test, y_test = load_mnist(subset="5k", train=False)
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    # Convolutions take NCHW batches: (images, channels=1, height=28, width=28).
    x, x_test = x[:, None], x_test[:, None]

    model = nn.Sequential(
        nn.Conv2D(1, 16, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2D(2),   # -> 16x14x14
        nn.Conv2D(16, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2D(2),  # -> 32x7x7
        nn.Flatten(),                                                             # -> 1568
        nn.Linear(32 * 7 * 7, 10),
    )
    model.summary((1, 28, 28))

    trainer = ember.Trainer(model, nn.CrossEntropyLoss(),
                            optim.Adam(model.parameters(), lr=1e-3), metrics=["accuracy"])
    trainer.fit(x, y, epochs=args.epochs, batch_size=64)

    result = trainer.evaluate(x_test, y_test, verbose=0)
    print(f"test loss {result['loss']:.4f}, test accuracy {100 * result['accuracy']:.1f}%")


if __name__ == "__main__":
    main()
