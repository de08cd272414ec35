"""CIFAR-100, the SBNN authors' ReActNet-18 and recipe (the paper's Table 3).

    python examples/cifar100_reactnet18.py --quick            # smoke run: ~1 min on a laptop CPU
    python examples/cifar100_reactnet18.py --pair 0           # EC 0.05, gamma 0.05, 300 epochs
    python examples/cifar100_reactnet18.py --ec 0.01          # gamma from the authors' table (0.07)
    python examples/cifar100_reactnet18.py --arch project     # this project's variant instead

``--arch authors`` (default) is the network and recipe of the authors' public code
(``sbnn_zoo.authors.authors_reactnet18``; specification in docs/examples.md):
ReActNet-18 (Bi-Real-Net-18 with RSign = LearnableBias + sign with Bi-Real's
polynomial gradient before each binary convolution, RPReLU after each shortcut
add), float stem conv + BN + 3x3/2 max-pool (16x16 maps), binary latent weights
starting at uniform[0, 0.001) (every weight a connection at the start), one learned
(tau, phi) per layer, single training step, no teacher; Adam 1e-3 with cosine
annealing stepped once per epoch, batch 512, 300 epochs, random crops (zero
padding 4), flips, random rotation +-15 degrees, mixup alpha 1, latent clamp +-1.5.
``--arch project`` is this project's earlier variant (``zoo.reactnet18``: no stem
max-pool, Glorot-initialised latent weights, no rotation, cosine decay per step).
One of the authors' CIFAR-100 EC/gamma pairs:

    --pair  0     1     2     3     4
    EC      0.05  0.04  0.03  0.02  0.01
    gamma   0.05  0.05  0.05  0.06  0.07

Everything else (options, BatchNorm recalibration, the report, conversion, the
TFLite check, the files under ``--out``) is the CIFAR-10 example's: see
``examples/cifar10_resnet18.py``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the CIFAR-10 example's driver

import sbnn_keras  # noqa: E402,F401  (first: selects legacy Keras for larq)

import cifar10_resnet18 as recipe  # noqa: E402
from sbnn_zoo import authors, zoo  # noqa: E402

DATASET = "cifar100"
NUM_CLASSES = 100
PAIRS = zoo.CIFAR100_PAIRS
EPOCHS = 300
DEFAULT_OUT = "artifacts/cifar100_reactnet18"


def build_model(args):
    """The authors' ReActNet-18 (``--arch authors``) or this project's variant."""
    if args.arch == "authors":
        return authors.authors_reactnet18(num_classes=NUM_CLASSES, width=args.width, normalize=DATASET)
    return zoo.reactnet18(num_classes=NUM_CLASSES, width=args.width, normalize=DATASET)


def extra_callbacks(args):
    return []  # approx_sign needs no schedule (the authors' CIFAR-100 code uses no EDE)


def parse_args(argv=None):
    return recipe.parse_args(
        argv, description=__doc__, pairs=PAIRS, epochs=EPOCHS, default_out=DEFAULT_OUT
    )


def main(argv=None):
    args = parse_args(argv)
    recipe.run(
        args,
        dataset=DATASET,
        num_classes=NUM_CLASSES,
        build=build_model,
        callbacks=extra_callbacks,
        pairs=PAIRS,
        rotation_degrees=authors.AUTHORS_RECIPES[DATASET]["rotation_degrees"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
