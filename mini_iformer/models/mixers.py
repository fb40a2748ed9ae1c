"""The Inception token mixer, the paper's contribution: a high-frequency and a low-frequency
mixer side by side on a split of the channels.

* :class:`HighMixer` (local detail): a 3x3 max-pool branch and a depthwise-convolution
  branch, each on half of its channels;
* :class:`LowMixer` (global structure): multi-head self-attention over the tokens, on maps
  average-pooled by ``pool_size`` first (and upsampled back) in the early stages;
* :class:`InceptionMixer`: the first ``high_dim`` channels to the high mixer, the rest to the
  low one, the outputs concatenated, fused by a depthwise 3x3 conv and projected back.

:mod:`mini_iformer.models.iformer` builds the network of Blocks around them. The attribute
names are the keys of the authors' checkpoints.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import nn, random
from ..autograd import Tensor
from ..ops import concatenate

__all__ = ["HighMixer", "LowMixer", "InceptionMixer", "to_nhwc", "to_nchw"]


def to_nhwc(x: Tensor) -> Tensor:
    """(B, C, H, W) maps as (B, H, W, C) tokens."""
    return x.permute(0, 2, 3, 1)


def to_nchw(x: Tensor) -> Tensor:
    """(B, H, W, C) tokens as (B, C, H, W) maps."""
    return x.permute(0, 3, 1, 2)


class HighMixer(nn.Module):
    """The high-frequency mixer on C_h channels (B, C_h, H, W) -> (B, 2 C_h, H, W).

    Half the channels go through a 1x1 conv (doubling them), a depthwise 3x3 conv and GELU;
    the other half through a 3x3 max-pool (stride 1, so the map keeps its size), a 1x1 conv
    (doubling them) and GELU. Both see only a 3x3 neighbourhood: local, high-frequency detail.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"HighMixer: the high-frequency channels must be even, got {dim}")
        self.cnn_in = self.pool_in = dim // 2
        cnn_out, pool_out = 2 * self.cnn_in, 2 * self.pool_in
        self.conv1 = nn.Conv2d(self.cnn_in, cnn_out, 1, bias=False)
        self.proj1 = nn.Conv2d(cnn_out, cnn_out, 3, padding=1, groups=cnn_out, bias=False)
        self.mid_gelu1 = nn.GELU()
        self.maxpool = nn.MaxPool2d(3, stride=1, padding=1)
        self.proj2 = nn.Conv2d(self.pool_in, pool_out, 1)
        self.mid_gelu2 = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        cx, px = x[:, : self.cnn_in], x[:, self.cnn_in :]
        cx = self.mid_gelu1(self.proj1(self.conv1(cx)))
        px = self.mid_gelu2(self.proj2(self.maxpool(px)))
        return concatenate([cx, px], axis=1)


class LowMixer(nn.Module):
    """The low-frequency mixer on C_l channels: (optional) average pooling, multi-head
    self-attention over the pooled tokens, and nearest upsampling back to the map size.

    ``qkv`` maps each token's C_l channels to queries, keys and values for ``num_heads``
    heads of C_l / num_heads channels; the heads' outputs are laid back as channels
    head * d + j. There is no output projection here: the Inception mixer's shared ``proj``
    follows. Pooling first (pool_size 2 in stages 1-2) cuts the N^2 cost of attention 16-fold.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        pool_size: int = 1,
    ) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"LowMixer: {dim} channels do not split into {num_heads} heads")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.attn_drop, self.pool_size = float(attn_drop), int(pool_size)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.pool = nn.AvgPool2d(pool_size, stride=pool_size) if pool_size > 1 else nn.Identity()
        self.uppool = nn.Upsample(scale_factor=pool_size) if pool_size > 1 else nn.Identity()
        self.generator: np.random.Generator | None = None  # for attention dropout

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(x)
        b, c, h, w = x.shape
        tokens = to_nhwc(x).reshape(b, h * w, c)  # row-major token order
        qkv = self.qkv(tokens).reshape(b, h * w, 3, self.num_heads, self.head_dim)
        q, k, v = (
            t.reshape(b, self.num_heads, h * w, self.head_dim)
            for t in qkv.permute(2, 0, 3, 1, 4).split(1, axis=0)
        )  # (B, heads, N, d)
        drop = self.attn_drop if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, generator=_generator(self))
        x = out.permute(0, 1, 3, 2).reshape(b, c, h, w)  # channel = head * d + j
        return self.uppool(x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.num_heads}, pool_size={self.pool_size}"


def _generator(module: nn.Module) -> np.random.Generator:
    """The module's own generator if it has one, else the library's default."""
    return module.generator if module.generator is not None else random.default_generator()


class InceptionMixer(nn.Module):
    """The Inception token mixer (checkpoint key ``attn``) on channel-last tokens (B, H, W, C).

    The first ``high_dim`` channels go to :class:`HighMixer`, the other ``low_dim`` to
    :class:`LowMixer`; their outputs (2 high_dim + low_dim channels) are concatenated, mixed
    locally by a residual depthwise 3x3 conv (``conv_fuse``) and projected back to C channels
    by a 1x1 conv (``proj``). Either part may be empty (all channels to one mixer), which the
    frequency ablations use.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        attention_head: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        pool_size: int = 1,
    ) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"InceptionMixer: dim {dim} is not divisible by num_heads {num_heads}")
        if not 0 <= attention_head <= num_heads:
            raise ValueError(
                f"InceptionMixer: attention_head must be in [0, {num_heads}], got {attention_head}"
            )
        head_dim = dim // num_heads
        self.low_dim = attention_head * head_dim
        self.high_dim = dim - self.low_dim
        self.high_mixer = HighMixer(self.high_dim) if self.high_dim else None
        self.low_mixer = (
            LowMixer(self.low_dim, attention_head, qkv_bias, attn_drop, pool_size)
            if self.low_dim
            else None
        )
        fused = 2 * self.high_dim + self.low_dim
        self.conv_fuse = nn.Conv2d(fused, fused, 3, padding=1, groups=fused, bias=False)
        self.proj = nn.Conv2d(fused, dim, 1)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        x = to_nchw(x)
        parts = []
        if self.high_mixer is not None:
            parts.append(self.high_mixer(x[:, : self.high_dim]))
        if self.low_mixer is not None:
            parts.append(self.low_mixer(x[:, self.high_dim :]))
        y = concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        y = y + self.conv_fuse(y)
        y = self.proj_drop(self.proj(y))
        return to_nhwc(y)

    def extra_repr(self) -> str:
        return f"high_dim={self.high_dim}, low_dim={self.low_dim}"
