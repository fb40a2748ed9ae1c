"""Training: the loop and its resumable state (:mod:`.engine`, :mod:`.state`) and the
``train_cifar.py`` command line (:mod:`.cli`) with its run folders (:mod:`.runs`)."""

from .engine import (
    DeviceBatches,
    NonFiniteGradientError,
    NonFiniteLossError,
    RunState,
    evaluate,
    topk_correct,
    train_steps,
)
from .state import load_training_state, pack, save_training_state, unpack

__all__ = [
    "DeviceBatches",
    "NonFiniteGradientError",
    "NonFiniteLossError",
    "RunState",
    "evaluate",
    "topk_correct",
    "train_steps",
    "load_training_state",
    "save_training_state",
    "pack",
    "unpack",
]
