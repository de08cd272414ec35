"""CIFAR-100, ReActNet-18 with SBNN kernels: the paper's Table 3 recipe.

    python examples/cifar100_reactnet18.py --quick            # smoke run: ~1 min on a laptop CPU
    python examples/cifar100_reactnet18.py --pair 0           # EC 0.05, gamma 0.05, 300 epochs
    python examples/cifar100_reactnet18.py --ec 0.01          # gamma from the authors' table (0.07)

The authors' recipe (paper section 4, "a single training step and no teacher"): the
CIFAR-10 setup (Adam, learning rate 1e-3 with cosine decay, batch 512, mixup
alpha = 1, crops with zero padding 4, flips, normalization) for 300 epochs on
ReActNet-18 (``sbnn_zoo.zoo.reactnet18``: Bi-Real-Net-18 with RSign =
``LearnableBias`` + ``approx_sign`` before each binary convolution and RPReLU after
each shortcut add), learned {alpha, beta} kernels, float stem, classifier and 1x1
shortcuts, and one of the authors' CIFAR-100 EC/gamma pairs:

    --pair  0     1     2     3     4
    EC      0.05  0.04  0.03  0.02  0.01
    gamma   0.05  0.05  0.05  0.06  0.07

Everything else (options, the report, conversion, the TFLite check, the files under
``--out``) is the CIFAR-10 example's: see ``examples/cifar10_resnet18.py``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the CIFAR-10 example's driver

import sbnn_keras  # noqa: E402,F401  (first: selects legacy Keras for larq)

import cifar10_resnet18 as recipe  # noqa: E402
from sbnn_zoo import zoo  # noqa: E402

DATASET = "cifar100"
NUM_CLASSES = 100
PAIRS = zoo.CIFAR100_PAIRS
EPOCHS = 300
DEFAULT_OUT = "artifacts/cifar100_reactnet18"


def build_model(args):
    """ReActNet-18 with SBNN kernels (``sbnn_zoo.zoo``)."""
    return zoo.reactnet18(num_classes=NUM_CLASSES, width=args.width, normalize=DATASET)


def extra_callbacks(args):
    return []  # approx_sign needs no schedule


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
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
