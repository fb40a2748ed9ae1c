"""``summary(model, input_size)``: parameters, multiply-adds and the frequency ramp per stage.

    >>> print(mi.summary(mi.create_model("iformer_small"), (3, 224, 224)))

runs one forward pass on a zero image (batch 1, no gradient) with a hook on every module to
see the shapes, then counts multiply-adds the usual way: every convolution and linear layer
(output elements x inputs per output) and the two matrix products of attention
(2 x N^2 x channels for N tokens); normalisation, activations, pooling and additions are
left out, as in the figures papers quote (4.8 G for iFormer-S at 224x224).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import nn
from .autograd import no_grad
from .factories import zeros
from .models.iformer import InceptionTransformer, LowMixer

__all__ = ["summary", "Summary", "StageSummary"]


@dataclass
class StageSummary:
    """One row of the table: a stage (its patch embedding, position embedding and blocks),
    or the classifier (final norm and head)."""

    name: str
    map_size: tuple[int, int] | None = None
    dim: int | None = None
    blocks: int = 0
    params: int = 0
    macs: int = 0
    splits: list[tuple[int, int]] = field(default_factory=list)  # (high_dim, low_dim) per block


@dataclass
class Summary:
    model: str
    input_size: tuple[int, int, int]
    stages: list[StageSummary]

    @property
    def total_params(self) -> int:
        return sum(s.params for s in self.stages)

    @property
    def total_macs(self) -> int:
        return sum(s.macs for s in self.stages)

    def __str__(self) -> str:
        c, h, w = self.input_size
        lines = [
            f"{self.model}, input {c}x{h}x{w}",
            f"{'stage':<6} {'map':>7} {'dim':>5} {'blocks':>6} {'params':>12} "
            f"{'MACs':>9}  high/low channels per block (share to attention)",
        ]
        for s in self.stages:
            size = f"{s.map_size[0]}x{s.map_size[1]}" if s.map_size else ""
            lines.append(
                f"{s.name:<6} {size:>7} {s.dim or '':>5} {s.blocks or '':>6} "
                f"{s.params:>12,} {_giga(s.macs):>9}  {_ramp(s.splits, s.dim)}"
            )
        lines.append(
            f"{'total':<6} {'':>7} {'':>5} {'':>6} {self.total_params:>12,} "
            f"{_giga(self.total_macs):>9}"
        )
        return "\n".join(lines)


def _giga(macs: int) -> str:
    return f"{macs / 1e9:.3f} G"


def _ramp(splits: list[tuple[int, int]], dim: int | None) -> str:
    """``64/32 x3 (1/3)``-style runs of equal splits."""
    runs: list[list[Any]] = []
    for split in splits:
        if runs and runs[-1][0] == split:
            runs[-1][1] += 1
        else:
            runs.append([split, 1])
    parts = []
    for (high, low), count in runs:
        share = f"{low / dim:.0%}" if dim else ""
        parts.append(f"{high}/{low}" + (f" x{count}" if count > 1 else "") + f" ({share})")
    return ", ".join(parts)


def _macs(module: nn.Module, inputs: tuple, output: Any) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.size * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output.size * module.in_features
    if isinstance(module, LowMixer):
        _, c, h, w = inputs[0].shape
        tokens = (h // module.pool_size) * (w // module.pool_size)
        return 2 * tokens * tokens * c  # q k^T and attn v, over all heads
    return 0


def summary(model: InceptionTransformer, input_size: int | Sequence[int] | None = None) -> Summary:
    """The per-stage table of an iFormer for one image of ``input_size`` ((C, H, W), (H, W),
    or an int for a square image; default: the size the model was made for)."""
    if not isinstance(model, InceptionTransformer):
        raise TypeError(f"summary: expected an InceptionTransformer, got {type(model).__name__}")
    size = _input_size(model, input_size)
    owner: dict[int, str] = {}  # module id -> the stage row it counts towards
    for i in range(1, 5):
        for key in (f"patch_embed{i}" if i > 1 else "patch_embed", f"blocks{i}"):
            for m in getattr(model, key).modules():
                owner[id(m)] = str(i)
    for m in (model.norm, model.head):
        for sub in m.modules():
            owner[id(sub)] = "head"
    stages = {str(i): StageSummary(str(i)) for i in range(1, 5)}
    stages["head"] = StageSummary("head")

    def hook(module, inputs, output):
        stages[owner[id(module)]].macs += _macs(module, inputs, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if id(m) in owner]
    was_training = model.training
    try:
        model.eval()
        with no_grad():
            model(zeros(1, *size))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    maps = model.stage_sizes(size[1], size[2])
    for i in range(1, 5):
        row = stages[str(i)]
        row.map_size, row.dim = maps[i - 1], model.embed_dims[i - 1]
        row.params = getattr(model, f"pos_embed{i}").size + sum(
            p.size
            for key in (f"patch_embed{i}" if i > 1 else "patch_embed", f"blocks{i}")
            for p in getattr(model, key).parameters()
        )
        blocks = getattr(model, f"blocks{i}")
        row.blocks = len(blocks)
        row.splits = [(b.attn.high_dim, b.attn.low_dim) for b in blocks]
    stages["head"].params = sum(p.size for m in (model.norm, model.head) for p in m.parameters())
    return Summary(getattr(model, "name", type(model).__name__), size, list(stages.values()))


def _input_size(model: InceptionTransformer, input_size: Any) -> tuple[int, int, int]:
    if input_size is None:
        height, width = model.img_size
        return (model.in_chans, height, width)
    if isinstance(input_size, int):
        return (model.in_chans, input_size, input_size)
    size = tuple(int(n) for n in input_size)
    if len(size) == 2:
        return (model.in_chans, *size)
    if len(size) == 3:
        return size
    raise ValueError(f"summary: input_size must be (C, H, W), (H, W) or an int, got {input_size}")
