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
and late blocks mostly global context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import functional as F
from .. import nn, random
from ..autograd import Tensor
from ..nn import init
from ..ops import concatenate
from . import inputs

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


def _nhwc(x: Tensor) -> Tensor:
    return x.permute(0, 2, 3, 1)


def _nchw(x: Tensor) -> Tensor:
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
        tokens = _nhwc(x).reshape(b, h * w, c)  # row-major token order
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
        x = _nchw(x)
        parts = []
        if self.high_mixer is not None:
            parts.append(self.high_mixer(x[:, : self.high_dim]))
        if self.low_mixer is not None:
            parts.append(self.low_mixer(x[:, self.high_dim :]))
        y = concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        y = y + self.conv_fuse(y)
        y = self.proj_drop(self.proj(y))
        return _nhwc(y)

    def extra_repr(self) -> str:
        return f"high_dim={self.high_dim}, low_dim={self.low_dim}"


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
        return _nhwc(self.norm2(self.proj2(x)))


class PatchEmbed(nn.Module):
    """Downsampling between stages (keys ``patch_embed2..4``): conv 3x3 stride 2 pad 1 and
    BatchNorm, channel-last in and out."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, out_chans, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_chans)

    def forward(self, x: Tensor) -> Tensor:
        return _nhwc(self.norm(self.proj(_nchw(x))))


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
        inputs.check_image_size(self, height, width)

    def _pos_embed(self, x: Tensor, i: int) -> Tensor:
        """Add stage ``i``'s position embedding, resized bilinearly if the map differs."""
        pos = getattr(self, f"pos_embed{i}")
        if pos.shape[1:3] != x.shape[1:3]:
            pos = _nhwc(
                F.interpolate(_nchw(pos), size=x.shape[1:3], mode="bilinear", align_corners=False)
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
        inputs.check_images(self, x)
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
