"""Layers and containers: ``Module`` and the layers iFormer is built from.

``mini_iformer.nn`` mirrors ``torch.nn`` where iFormer needs it: a model is a tree of modules
whose parameters and buffers, named by their attribute paths, form its state dict.
"""

from . import init
from .layers import (
    GELU,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    DropPath,
    Identity,
    LayerNorm,
    Linear,
    MaxPool2d,
    Upsample,
)
from .module import IncompatibleKeys, Module, ModuleList, Parameter, Sequential

__all__ = [
    "init",
    "Module",
    "Parameter",
    "Sequential",
    "ModuleList",
    "IncompatibleKeys",
    "Identity",
    "Linear",
    "Conv2d",
    "LayerNorm",
    "BatchNorm2d",
    "GELU",
    "Dropout",
    "DropPath",
    "MaxPool2d",
    "AvgPool2d",
    "Upsample",
]
