"""Train iFormer on CIFAR-10 (the default), CIFAR-100 or an ImageNet-style folder.

    python train_cifar.py                   # iformer_cifar on CIFAR-10, downloaded to ./data,
                                            # in a new folder runs/train/exp, exp2, ...
    python train_cifar.py --help            # every option
    python train_cifar.py --resume          # continue the latest of those runs exactly

See mini_iformer/training/cli.py for what the output folder holds.
"""

import sys

from mini_iformer.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
