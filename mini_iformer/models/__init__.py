"""Named iFormer configurations and ``create_model``.

The released models (ImageNet-1k, head_dim 32, layer scale 1e-6 in stages 3-4):

======================  =====  ============  ===================  ===========
name                    image  depths        widths               parameters
======================  =====  ============  ===================  ===========
iformer_small           224    3, 3, 9, 3    96, 192, 320, 384    19,866,344
iformer_base            224    4, 6, 14, 6   96, 192, 384, 512    47,866,216
iformer_large           224    4, 6, 18, 8   96, 192, 448, 640    86,637,096
iformer_*_384           384    as above      as above             (S: 20,899,944)
======================  =====  ============  ===================  ===========

``iformer_cifar`` is this project's configuration for 32x32 images (CIFAR-10/100). The
released stem shrinks the image 4x and each later stage 2x more, which would leave a 1x1 map
in stage 4 of a 32x32 image. Here the stem's first conv keeps the resolution (strides 1, 2),
so the stages see 16x16, 8x8, 4x4 and 2x2 maps: stage 1 still pools to an 8x8 grid of 64
tokens for attention, and every block type is kept. Widths 48-96-160-192 with 16-channel heads
keep the released models' ramp exactly (1/3 of the channels to attention in stage 1, 1/2 in
stage 2, 7/10 then 9/10 in stage 3, 11/12 in stage 4) at a size that trains on a CPU: depths
2, 2, 4, 2, 2,773,482 parameters and 0.056 G multiply-adds per image (iFormer-S: 4.8 G)
(``mini_iformer.summary(create_model("iformer_cifar"), (3, 32, 32))`` prints the breakdown).
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from .. import checkpoint as ckpt
from .iformer import (
    Block,
    HighMixer,
    InceptionMixer,
    InceptionTransformer,
    LowMixer,
    Mlp,
    PatchEmbed,
    Stem,
)

__all__ = [
    "create_model",
    "list_models",
    "register_model",
    "model_config",
    "InceptionTransformer",
    "Block",
    "HighMixer",
    "LowMixer",
    "InceptionMixer",
    "Mlp",
    "PatchEmbed",
    "Stem",
]

_CONFIGS: dict[str, dict[str, Any]] = {}


def register_model(name: str, **config: Any) -> None:
    """Make ``create_model(name)`` build ``InceptionTransformer(**config)``."""
    if name in _CONFIGS:
        raise ValueError(f"register_model: a model named {name!r} already exists")
    _CONFIGS[name] = config


def _ramp(*runs: tuple[int, int]) -> tuple[int, ...]:
    """Attention heads per block from (heads, how many blocks) runs."""
    return tuple(h for heads, count in runs for h in [heads] * count)


_RELEASED = {
    "iformer_small": dict(
        depths=(3, 3, 9, 3),
        embed_dims=(96, 192, 320, 384),
        num_heads=(3, 6, 10, 12),
        attention_heads=_ramp((1, 3), (3, 3), (7, 4), (9, 5), (11, 3)),
    ),
    "iformer_base": dict(
        depths=(4, 6, 14, 6),
        embed_dims=(96, 192, 384, 512),
        num_heads=(3, 6, 12, 16),
        attention_heads=_ramp((1, 4), (3, 6), (8, 7), (10, 7), (15, 6)),
    ),
    "iformer_large": dict(
        depths=(4, 6, 18, 8),
        embed_dims=(96, 192, 448, 640),
        num_heads=(3, 6, 14, 20),
        attention_heads=_ramp((1, 4), (3, 6), (10, 9), (12, 9), (19, 8)),
    ),
}
for _name, _config in _RELEASED.items():
    register_model(_name, img_size=224, **_config)
    register_model(f"{_name}_384", img_size=384, **_config)

_CIFAR = dict(
    img_size=32,
    num_classes=10,
    depths=(2, 2, 4, 2),
    embed_dims=(48, 96, 160, 192),
    num_heads=(3, 6, 10, 12),
    stem_strides=(1, 2),
)
register_model(
    "iformer_cifar", attention_heads=_ramp((1, 2), (3, 2), (7, 2), (9, 2), (11, 2)), **_CIFAR
)

# The two ablations of the paper's frequency analysis (mini_iformer.analysis): the same network
# with every block's channels sent to one side of the inception mixer. "all_attention" gives
# attention every head of every block (C_l = C: a pooled-attention transformer with a conv
# stem); "all_high" gives it none (C_h = C: max-pool and depthwise-conv paths only).
register_model(
    "iformer_cifar_all_attention", attention_heads=_ramp((3, 2), (6, 2), (10, 4), (12, 2)), **_CIFAR
)
register_model("iformer_cifar_all_high", attention_heads=(0,) * 10, **_CIFAR)

# The same design at a tenth of the width and one block per stage: for quick experiments,
# lessons and tests of the training machinery (seconds per epoch on a few thousand images).
register_model(
    "iformer_cifar_tiny",
    img_size=32,
    num_classes=10,
    depths=(1, 1, 1, 1),
    embed_dims=(24, 48, 80, 96),
    num_heads=(3, 6, 10, 12),
    attention_heads=(1, 3, 7, 11),
    stem_strides=(1, 2),
)


def list_models() -> list[str]:
    """The names ``create_model`` accepts."""
    return sorted(_CONFIGS)


def model_config(name: str) -> dict[str, Any]:
    """The constructor arguments of a named configuration (a copy)."""
    if name not in _CONFIGS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return dict(_CONFIGS[name])


def create_model(
    name: str,
    num_classes: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    **overrides: Any,
) -> InceptionTransformer:
    """Build a named configuration, e.g. ``create_model("iformer_small")``.

    ``num_classes`` replaces the configuration's (1000 for the ImageNet models); any other
    constructor argument of :class:`InceptionTransformer` may be overridden by keyword
    (``drop_path_rate=0.1``). With ``checkpoint`` (the authors' ``.pth`` or our ``.npz``, see
    :mod:`mini_iformer.checkpoint`) the weights are loaded strictly: a file for another
    configuration or head size is refused with the keys that differ.
    """
    config = model_config(name)
    unknown = set(overrides) - set(_constructor_args())
    if unknown:
        raise TypeError(f"create_model: unknown arguments {sorted(unknown)} for {name}")
    config.update(overrides)
    if num_classes is not None:
        config["num_classes"] = num_classes
    model = InceptionTransformer(**config)
    model.name = name
    if checkpoint is not None:
        state = ckpt.load_weights(checkpoint)
        try:
            model.load_state_dict(state)
        except ValueError as exc:
            raise ValueError(f"{os.fspath(checkpoint)} does not fit {name}: {exc}") from None
    return model


def _constructor_args() -> list[str]:
    return [p for p in inspect.signature(InceptionTransformer.__init__).parameters if p != "self"]
