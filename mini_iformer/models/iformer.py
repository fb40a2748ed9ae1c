"""iFormer, the Inception Transformer (Si et al., NeurIPS 2022), module by module.

The network, top to bottom (shapes for iformer_small at 224x224, batch B):

    image (B, 3, 224, 224)
    patch_embed   stem: conv 3x3/2 -> BN -> GELU -> conv 3x3/2 -> BN      (B, 56, 56, 96)
    + pos_embed1
    blocks1       3 Blocks, 1/3 of the channels to attention, 2x2 pooled   (B, 56, 56, 96)
    patch_embed2  conv 3x3/2 -> BN                                         (B, 28, 28, 192)
    + pos_embed2, blocks2 (3 Blocks, 1/2 to attention, 2x2 pooled)
    patch_embed3  ... blocks3 (9 Blocks, 7/10 then 9/10 to attention)       (B, 14, 14, 320)
    patch_embed4  ... blocks4 (3 Blocks, 11/12 to attention)                (B, 7, 7, 384)
    norm, mean over the 49 tokens, head                                     (B, num_classes)

Between blocks the tokens are channel-last (B, H, W, C), so LayerNorm and the MLP act on the
last axis; the token mixer works on channel-first maps (B, C, H, W), the layout of its
convolutions and pooling. Every attribute name here is a key in the authors' checkpoints.

The paper's idea is the *frequency ramp*: each Block sends its first ``high_dim`` channels
to a high-frequency mixer (max-pooling and a depthwise convolution: local detail) and the rest,
``low_dim = attention_heads * head_dim``, to a low-frequency mixer (self-attention: global
structure). ``attention_heads`` grows with depth, so early blocks see mostly edges and texture
and late blocks mostly global context. The mixers are in :mod:`mini_iformer.models.mixers`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import backend, nn
from .. import functional as F
from ..autograd import Tensor
from ..nn import init
from .mixers import HighMixer, InceptionMixer, LowMixer, to_nchw, to_nhwc

__all__ = [
    "HighMixer",
    "LowMixer",
    "InceptionMixer",
    "Mlp",
    "Block",
    "Stem",
    "PatchEmbed",
    "InceptionTransformer",
]


class Mlp(nn.Module):
    """fc1 (C -> hidden) -> GELU -> dropout -> fc2 (hidden -> C) -> dropout, per token."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """One iFormer block on channel-last tokens:

        x = x + drop_path(layer_scale_1 * mixer(norm1(x)))
        x = x + drop_path(layer_scale_2 * mlp(norm2(x)))

    ``layer_scale_1/2`` (per-channel, initialised small) exist only with ``use_layer_scale``
    (stages 3 and 4 of the released models).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        attention_head: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        pool_size: int = 1,
        use_layer_scale: bool = False,
        layer_scale_init_value: float = 1e-6,
    ) -> None:
        super().__init__()
        self.layer_scale_1: nn.Parameter | None
        self.layer_scale_2: nn.Parameter | None
        if use_layer_scale:
            self.layer_scale_1 = nn.Parameter(np.full(dim, layer_scale_init_value, np.float32))
            self.layer_scale_2 = nn.Parameter(np.full(dim, layer_scale_init_value, np.float32))
        else:
            self.layer_scale_1 = self.layer_scale_2 = None
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = InceptionMixer(
            dim, num_heads, attention_head, qkv_bias, attn_drop, drop, pool_size
        )
        self.drop_path = nn.DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor) -> Tensor:
        y = self.attn(self.norm1(x))
        if self.layer_scale_1 is not None:
            y = self.layer_scale_1 * y
        x = x + self.drop_path(y)
        y = self.mlp(self.norm2(x))
        if self.layer_scale_2 is not None:
            y = self.layer_scale_2 * y
        return x + self.drop_path(y)

    def extra_repr(self) -> str:
        return f"layer_scale={self.layer_scale_1 is not None}"


class Stem(nn.Module):
    """The first patch embedding (key ``patch_embed``): two 3x3 convs with BatchNorm and GELU
    between, NCHW image -> channel-last tokens. The released models use strides (2, 2), a
    4x smaller map; small images use smaller strides (see ``iformer_cifar``)."""

    def __init__(self, in_chans: int, out_chans: int, strides: Sequence[int] = (2, 2)) -> None:
        super().__init__()
        self.strides = tuple(int(s) for s in strides)
        mid = out_chans // 2
        self.proj1 = nn.Conv2d(in_chans, mid, 3, stride=self.strides[0], padding=1)
        self.norm1 = nn.BatchNorm2d(mid)
        self.act = nn.GELU()
        self.proj2 = nn.Conv2d(mid, out_chans, 3, stride=self.strides[1], padding=1)
        self.norm2 = nn.BatchNorm2d(out_chans)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.norm1(self.proj1(x)))
        return to_nhwc(self.norm2(self.proj2(x)))


class PatchEmbed(nn.Module):
    """Downsampling between stages (keys ``patch_embed2..4``): conv 3x3 stride 2 pad 1 and
    BatchNorm, channel-last in and out."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, out_chans, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_chans)

    def forward(self, x: Tensor) -> Tensor:
        return to_nhwc(self.norm(self.proj(to_nchw(x))))


def _halve(n: int, stride: int) -> int:
    """Output size of a 3x3 conv with padding 1 and this stride."""
    return (n - 1) // stride + 1


class InceptionTransformer(nn.Module):
    """The whole network; see the module docstring and :mod:`mini_iformer.models` for the
    named configurations. ``attention_heads`` holds one number per block (all stages in
    order): the frequency ramp."""

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: Sequence[int] = (96, 192, 320, 384),
        depths: Sequence[int] = (3, 3, 9, 3),
        num_heads: Sequence[int] = (3, 6, 10, 12),
        attention_heads: Sequence[int] = (1,) * 3 + (3,) * 3 + (7,) * 4 + (9,) * 5 + (11,) * 3,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        use_layer_scale: bool = True,
        layer_scale_init_value: float = 1e-6,
        pool_sizes: Sequence[int] = (2, 2, 1, 1),
        stem_strides: Sequence[int] = (2, 2),
    ) -> None:
        super().__init__()
        for name, seq in (
            ("embed_dims", embed_dims),
            ("depths", depths),
            ("num_heads", num_heads),
            ("pool_sizes", pool_sizes),
        ):
            if len(seq) != 4:
                raise ValueError(
                    f"InceptionTransformer: {name} needs 4 values (one per stage), got {tuple(seq)}"
                )
        if len(attention_heads) != sum(depths):
            raise ValueError(
                f"InceptionTransformer: attention_heads needs one value per block "
                f"({sum(depths)} for depths {tuple(depths)}), got {len(attention_heads)}"
            )
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.img_size, self.in_chans, self.num_classes = size, in_chans, num_classes
        self.embed_dims, self.depths = tuple(embed_dims), tuple(depths)
        self.num_heads, self.attention_heads = tuple(num_heads), tuple(attention_heads)
        self.pool_sizes, self.stem_strides = tuple(pool_sizes), tuple(stem_strides)
        self.default_img_size = size[0]

        # the map size each stage was made for, which the position embeddings have
        h, w = (_halve(_halve(n, stem_strides[0]), stem_strides[1]) for n in size)
        maps = []
        for i in range(4):
            if i:
                h, w = _halve(h, 2), _halve(w, 2)
            maps.append((h, w))
        for i, ((mh, mw), dim) in enumerate(zip(maps, embed_dims), 1):
            setattr(self, f"pos_embed{i}", nn.Parameter(np.zeros((1, mh, mw, dim), np.float32)))

        total = sum(depths)
        rates = [drop_path_rate * k / (total - 1) if total > 1 else 0.0 for k in range(total)]
        first = 0
        for i in range(4):
            if i == 0:
                self.patch_embed = Stem(in_chans, embed_dims[0], stem_strides)
            else:
                setattr(self, f"patch_embed{i + 1}", PatchEmbed(embed_dims[i - 1], embed_dims[i]))
            blocks = nn.Sequential(
                *[
                    Block(
                        embed_dims[i],
                        num_heads[i],
                        attention_heads[first + j],
                        mlp_ratio,
                        qkv_bias,
                        drop_rate,
                        attn_drop_rate,
                        rates[first + j],
                        pool_sizes[i],
                        use_layer_scale and i >= 2,
                        layer_scale_init_value,
                    )
                    for j in range(depths[i])
                ]
            )
            setattr(self, f"blocks{i + 1}", blocks)
            first += depths[i]
        self.norm = nn.LayerNorm(embed_dims[-1], eps=1e-6)
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(_init_weights)
        for i in range(1, 5):
            init.trunc_normal_(getattr(self, f"pos_embed{i}"), std=0.02)

    # -- shapes -------------------------------------------------------------------------------
    def stage_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """The (H, W) of the token map in each stage for an input of this size."""
        h, w = (
            _halve(_halve(n, self.stem_strides[0]), self.stem_strides[1]) for n in (height, width)
        )
        sizes = [(h, w)]
        for _ in range(3):
            h, w = _halve(h, 2), _halve(w, 2)
            sizes.append((h, w))
        return sizes

    def check_image_size(self, height: int, width: int) -> None:
        """Raise ``ValueError`` unless images of ``height`` x ``width`` pixels fit the network.

        Any size works whose token map in every stage is non-empty and divisible by that
        stage's pooling (2x2 in stages 1-2 of the released models): for iformer_small any
        multiple of 16 (224, 256, 384, 240x320), for iformer_cifar any multiple of 8. The position
        embeddings are resized bilinearly to the stage's map, so the size need not be the one
        the model was made for, nor square.
        """
        name = type(self).__name__
        if height < 1 or width < 1:
            raise ValueError(f"{name}: images must have at least one pixel, got {height}x{width}")
        for i, ((h, w), pool) in enumerate(
            zip(self.stage_sizes(height, width), self.pool_sizes), 1
        ):
            if h % pool or w % pool or h < pool or w < pool:
                step = max(
                    (
                        math.prod(self.stem_strides) * 2**j * p
                        for j, p in enumerate(self.pool_sizes)
                        if p > 1
                    ),
                    default=1,
                )
                raise ValueError(
                    f"{name}: an input of {height}x{width} gives stage {i} a "
                    f"{h}x{w} token map, which its {pool}x{pool} pooling cannot divide; use "
                    f"heights and widths that are multiples of {step} (e.g. {self.img_size[0]})"
                )

    def _check_input(self, x: Tensor) -> None:
        """Refuse, before any computation, what the network cannot take (a few attribute
        reads): a shape other than (B, in_chans, H, W) with B >= 1, a non-floating dtype, an
        image size :meth:`check_image_size` refuses, and images on another backend than the
        parameters."""
        name = type(self).__name__
        shape = tuple(x.shape)
        expected = f"(B, {self.in_chans}, H, W)"
        if len(shape) != 4 or shape[1] != self.in_chans:
            raise ValueError(
                f"{name}: expected images of shape {expected}, got shape {shape}"
                + (
                    " (add the batch axis: x[None])"
                    if len(shape) == 3 and shape[0] == self.in_chans
                    else ""
                )
            )
        if shape[0] == 0:
            raise ValueError(
                f"{name}: expected images of shape {expected} with B >= 1, got an "
                f"empty batch of shape {shape}"
            )
        if x.dtype.kind != "f":
            raise TypeError(
                f"{name}: expected floating-point images, got dtype "
                f"{x.dtype} (convert with .astype('float32') and normalise)"
            )
        self.check_image_size(shape[2], shape[3])
        where, ours = x.backend, self.pos_embed1.backend
        if where != ours:
            raise backend.BackendMismatchError(
                f"{name}: the images are on the {where} backend but the model's parameters are "
                f"on {ours}; create the images after set_backend({ours!r}), or build the model "
                f"after set_backend({where!r})"
            )

    def _pos_embed(self, x: Tensor, i: int) -> Tensor:
        """Add stage ``i``'s position embedding, resized bilinearly if the map differs."""
        pos = getattr(self, f"pos_embed{i}")
        if pos.shape[1:3] != x.shape[1:3]:
            pos = to_nhwc(
                F.interpolate(to_nchw(pos), size=x.shape[1:3], mode="bilinear", align_corners=False)
            )
        return x + pos

    # -- forward ------------------------------------------------------------------------------
    def forward_features(self, x: Any) -> Tensor:
        """Channel-last tokens after the final norm, (B, H/32, W/32, C) for the released models.

        Takes what :meth:`forward` takes and refuses what it refuses.
        """
        if not isinstance(x, Tensor):
            try:
                x = Tensor(x)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"{type(self).__name__}: expected images as a Tensor or an array "
                    f"of shape (B, {self.in_chans}, H, W), got "
                    f"{type(x).__name__} ({exc})"
                ) from None
        self._check_input(x)
        pos = self.pos_embed1
        if x.dtype.itemsize < pos.dtype.itemsize:  # float16 images: cast up, exactly
            x = x.astype(pos.dtype)
        x = self.patch_embed(x)
        for i in range(1, 5):
            if i > 1:
                x = getattr(self, f"patch_embed{i}")(x)
            x = self._pos_embed(x, i)
            x = getattr(self, f"blocks{i}")(x)
        return self.norm(x)

    def forward(self, x: Any) -> Tensor:
        """Logits (B, num_classes) for images (B, in_chans, H, W).

        ``x`` is a Tensor, or anything :func:`mini_iformer.tensor` takes (a NumPy array keeps
        its dtype and is moved to the current backend; nested lists become float32). Images
        of a floating dtype narrower than the parameters' (float16 for a float32 model) are
        cast up to the parameters' dtype, which is exact; wider ones (float64 images for a
        float32 model) follow the promotion rules, so the whole forward runs in float64.
        Refused before any computation, with the expected and the given shape or dtype:
        ``ValueError`` for another rank or channel count, an empty batch or an image size
        the network cannot take (see :meth:`check_image_size`); ``TypeError`` for integer,
        boolean or complex images; :class:`~mini_iformer.backend.BackendMismatchError` (a
        ``TypeError``) for images on another backend than the parameters.
        """
        return self.head(self.forward_features(x).mean(axis=(1, 2)))

    def block_splits(self) -> list[tuple[int, int, int, int]]:
        """(stage, dim, high_dim, low_dim) for every block: the frequency ramp as numbers."""
        out = []
        for i in range(1, 5):
            for block in getattr(self, f"blocks{i}"):
                mixer = block.attn
                out.append((i, mixer.high_dim + mixer.low_dim, mixer.high_dim, mixer.low_dim))
        return out

    def extra_repr(self) -> str:
        return (
            f"img_size={self.img_size}, embed_dims={self.embed_dims}, depths={self.depths}, "
            f"attention_heads={self.attention_heads}"
        )


def _init_weights(m: nn.Module) -> None:
    """The authors' initialisation: truncated normal (std 0.02) weights for every Linear and
    Conv2d, zero biases; norms start as the identity (their layers' defaults)."""
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            init.zeros_(m.bias)
