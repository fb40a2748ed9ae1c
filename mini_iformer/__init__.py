"""mini-iformer: iFormer (Inception Transformer) from scratch, on NumPy or CuPy.

The pieces, from the bottom up:

* :mod:`mini_iformer.backend` - which array library does the arithmetic (NumPy or CuPy).
* :mod:`mini_iformer.autograd` - ``Tensor`` and the reverse-mode engine.
* :mod:`mini_iformer.factories` - new tensors: ``tensor``, ``zeros``, ``randn``, ...
* :mod:`mini_iformer.ops` - every operation: its reference forward and backward, its fast
  forms, and ``implementations``/``use`` to see and choose them.
* :mod:`mini_iformer.functional` - the functional API with PyTorch's names.
* :mod:`mini_iformer.nn` - ``Module`` and the layers.
* :mod:`mini_iformer.models` - iFormer and its named configurations (``create_model``).
* :mod:`mini_iformer.checkpoint` - our ``.npz`` files and the authors' PyTorch ``.pth`` files.
* :mod:`mini_iformer.runtime` - how the machine is used: threads and cache blocks, memory,
  host-to-GPU copies (nothing there changes a result).
* :mod:`mini_iformer.data`, :mod:`mini_iformer.optim`, :mod:`mini_iformer.training` -
  datasets and loaders, optimisers, the training loop: loaded on first use, so
  ``mi.optim.AdamW`` works after ``import mini_iformer as mi`` (as ``torch.optim.AdamW`` after
  ``import torch``) without slowing that import down.
"""

from . import backend, checkpoint, functional, nn, random, runtime
from .autograd import (
    OPS,
    Function,
    Tensor,
    as_tensor,
    enable_grad,
    float32,
    float64,
    is_grad_enabled,
    no_grad,
)
from .backend import BackendMismatchError, BackendUnavailableError, get_backend, set_backend
from .factories import arange, full, ones, ones_like, rand, randn, tensor, zeros, zeros_like
from .models import create_model, list_models
from .ops import *  # noqa: F403 - the core operations, mi.exp(x) etc.
from .ops import __all__ as _ops_all
from .random import manual_seed
from .summary import summary

__version__ = "0.1.0"

_ON_FIRST_USE = ("data", "optim", "training")


def __getattr__(name: str):
    """``mi.data``, ``mi.optim`` and ``mi.training``, imported when first asked for."""
    if name in _ON_FIRST_USE:
        import importlib  # noqa: PLC0415

        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "backend",
    "functional",
    "OPS",
    "Function",
    "Tensor",
    "arange",
    "as_tensor",
    "enable_grad",
    "float32",
    "float64",
    "full",
    "is_grad_enabled",
    "no_grad",
    "ones",
    "ones_like",
    "rand",
    "randn",
    "tensor",
    "zeros",
    "zeros_like",
    "BackendMismatchError",
    "BackendUnavailableError",
    "get_backend",
    "set_backend",
    "nn",
    "random",
    "runtime",
    "checkpoint",
    "create_model",
    "list_models",
    "manual_seed",
    "summary",
    *_ops_all,
]
