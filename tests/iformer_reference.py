"""A compact PyTorch implementation of iFormer (Inception Transformer, Si et al., NeurIPS 2022).

This is the oracle the NumPy model in ``mini_iformer`` is tested against. It follows
``shared/reference/ARCHITECTURE.md`` (the description of the authors' released model) and
mirrors the authors' state-dict keys and shapes exactly, so the same ``state_dict`` loads into
either model. The reference itself is checked against the authors' test vectors
(``iformer_mini_vectors.npz``: logits in eval and train mode, the loss, every gradient and the
BatchNorm running statistics) and against the authors' state-dict listing
(``iformer_state_dicts.tsv``) by ``tests/test_reference_model.py``.

Layouts: images are NCHW; between blocks the tokens are channel-last (B, H, W, C) and
LayerNorm acts over C; the token mixer works in NCHW.

Public helpers:

* :class:`InceptionTransformer` (and its parts :class:`Stem`, :class:`PatchEmbed`,
  :class:`Block`, :class:`InceptionMixer`, :class:`HighMixer`, :class:`LowMixer`,
  :class:`Mlp`, :class:`DropPath`);
* :data:`CONFIGS` and :func:`build` for the named configurations;
* :func:`init_like_authors`, :func:`load_numpy_state_dict`;
* :data:`REFERENCE_DIR`, :func:`load_vectors`, :func:`load_state_dict_table`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CONFIGS",
    "REFERENCE_DIR",
    "REFERENCE_ENV_VAR",
    "VECTORS_FILE",
    "STATE_DICTS_FILE",
    "Block",
    "DropPath",
    "HighMixer",
    "InceptionMixer",
    "InceptionTransformer",
    "LowMixer",
    "Mlp",
    "PatchEmbed",
    "Stem",
    "build",
    "init_like_authors",
    "load_numpy_state_dict",
    "load_state_dict_table",
    "load_vectors",
]

# --------------------------------------------------------------------------------------------
# Where the reference material lives
# --------------------------------------------------------------------------------------------

_REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_ENV_VAR = "MINI_IFORMER_REFERENCE"
#: The ``shared/reference`` folder: ``<repo root>/../shared/reference`` unless the environment
#: variable ``MINI_IFORMER_REFERENCE`` names another folder.
REFERENCE_DIR = Path(
    os.environ.get(REFERENCE_ENV_VAR) or (_REPO_ROOT.parent / "shared" / "reference")
).resolve()
VECTORS_FILE = "iformer_mini_vectors.npz"
STATE_DICTS_FILE = "iformer_state_dicts.tsv"


def _reference_file(name: str) -> Path:
    path = REFERENCE_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"iFormer reference file not found: {path}\n"
            f"It is expected in the reference folder {REFERENCE_DIR} (by default "
            f"<repo root>/../shared/reference). Point the tests at the folder that holds "
            f"{name} with the environment variable {REFERENCE_ENV_VAR}, e.g.\n"
            f"    {REFERENCE_ENV_VAR}=/path/to/shared/reference python -m pytest"
        )
    return path


def load_vectors() -> dict[str, np.ndarray]:
    """The authors' test vectors (``iformer_mini_vectors.npz``) as a dict of arrays.

    Raises FileNotFoundError, naming the expected path and the environment variable to set,
    when the file is missing.
    """
    with np.load(_reference_file(VECTORS_FILE)) as data:
        return {key: data[key] for key in data.files}


def load_state_dict_table() -> tuple[dict[str, list[tuple[str, tuple[int, ...], str]]],
                                     dict[str, int]]:
    """Parse ``iformer_state_dicts.tsv``.

    Returns ``(rows, totals)``: ``rows[model]`` is the ordered list of ``(key, shape, kind)``
    with ``kind`` 'param' or 'buffer' (a 'scalar' shape becomes ``()``), and
    ``totals[model]`` the parameter count stated in the file.
    """
    rows: dict[str, list[tuple[str, tuple[int, ...], str]]] = {}
    totals: dict[str, int] = {}
    for line in _reference_file(STATE_DICTS_FILE).read_text().splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            words = line[1:].split()
            if len(words) == 4 and words[1:3] == ["total", "parameters:"]:
                totals[words[0]] = int(words[3])
            continue
        model, key, shape, kind = line.split("\t")
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        rows.setdefault(model, []).append((key, dims, kind))
    return rows, totals


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


class DropPath(nn.Module):
    """Stochastic depth per sample: drop a sample's residual branch with probability ``rate``
    and scale the survivors by 1/(1-rate); identity in eval mode or at rate 0."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class Stem(nn.Module):
    """``patch_embed``: two 3x3 stride-2 convs with BatchNorm, GELU between (total stride 4).
    NCHW in, channel-last out."""

    def __init__(self, in_chans: int, out_chans: int):
        super().__init__()
        self.proj1 = nn.Conv2d(in_chans, out_chans // 2, 3, stride=2, padding=1)
        self.norm1 = nn.BatchNorm2d(out_chans // 2)
        self.proj2 = nn.Conv2d(out_chans // 2, out_chans, 3, stride=2, padding=1)
        self.norm2 = nn.BatchNorm2d(out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(self.proj1(x)))
        x = self.norm2(self.proj2(x))
        return x.permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    """``patch_embed2..4``: 3x3 stride-2 pad-1 conv with bias, then BatchNorm.
    Channel-last in and out."""

    def __init__(self, in_chans: int, out_chans: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, out_chans, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.proj(x.permute(0, 3, 1, 2)))
        return x.permute(0, 2, 3, 1)


class HighMixer(nn.Module):
    """High-frequency mixer: a 1x1 conv + depthwise 3x3 conv branch on the first half of the
    channels, a 3x3 max-pool + 1x1 conv branch on the second half; 2*C_h channels out."""

    def __init__(self, dim: int):
        super().__init__()
        self.cnn_in = cnn_in = dim // 2
        pool_in = dim // 2
        self.conv1 = nn.Conv2d(cnn_in, 2 * cnn_in, 1, bias=False)
        self.proj1 = nn.Conv2d(2 * cnn_in, 2 * cnn_in, 3, padding=1, groups=2 * cnn_in,
                               bias=False)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.proj2 = nn.Conv2d(pool_in, 2 * pool_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cx = F.gelu(self.proj1(self.conv1(x[:, :self.cnn_in])))
        px = F.gelu(self.proj2(self.pool(x[:, self.cnn_in:])))
        return torch.cat([cx, px], dim=1)


class LowMixer(nn.Module):
    """Low-frequency mixer: (average pool) -> multi-head self-attention over the tokens ->
    (nearest upsample). No output projection. NCHW in and out."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True,
                 attn_drop: float = 0.0, pool_size: int = 1):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.pool_size = pool_size
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_size > 1:
            x = F.avg_pool2d(x, self.pool_size, stride=self.pool_size, count_include_pad=False)
        B, C, H, W = x.shape
        tokens = x.flatten(2).transpose(1, 2)                                 # (B, N, C)
        qkv = self.qkv(tokens).reshape(B, H * W, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)                                  # (B, h, N, d)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)
        out = self.attn_drop(attn) @ v                                        # (B, h, N, d)
        out = out.transpose(2, 3).reshape(B, C, H, W)                         # c = head*d + j
        if self.pool_size > 1:
            out = F.interpolate(out, scale_factor=self.pool_size, mode="nearest")
        return out


class InceptionMixer(nn.Module):
    """The token mixer (state-dict key ``attn``): high/low frequency split, depthwise fuse
    conv with a residual, 1x1 projection. Channel-last in and out, NCHW inside."""

    def __init__(self, dim: int, num_heads: int, attention_head: int, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, pool_size: int = 1):
        super().__init__()
        head_dim = dim // num_heads
        self.low_dim = low_dim = attention_head * head_dim
        self.high_dim = high_dim = dim - low_dim
        self.high_mixer = HighMixer(high_dim)
        self.low_mixer = LowMixer(low_dim, attention_head, qkv_bias=qkv_bias,
                                  attn_drop=attn_drop, pool_size=pool_size)
        fused = 2 * high_dim + low_dim
        self.conv_fuse = nn.Conv2d(fused, fused, 3, padding=1, groups=fused, bias=False)
        self.proj = nn.Conv2d(fused, dim, 1)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)
        h = self.high_mixer(x[:, :self.high_dim])
        l = self.low_mixer(x[:, self.high_dim:])  # noqa: E741
        y = torch.cat([h, l], dim=1)
        y = y + self.conv_fuse(y)
        y = self.proj_drop(self.proj(y))
        return y.permute(0, 2, 3, 1)


class Mlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout, on channel-last tokens."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class Block(nn.Module):
    """x + drop_path(ls1 * mixer(norm1(x))), then x + drop_path(ls2 * mlp(norm2(x))).
    Layer scales exist only when ``use_layer_scale`` (stages 3 and 4)."""

    def __init__(self, dim: int, num_heads: int, attention_head: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0, pool_size: int = 1, use_layer_scale: bool = False,
                 layer_scale_init_value: float = 1e-6):
        super().__init__()
        if use_layer_scale:
            self.layer_scale_1 = nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
            self.layer_scale_2 = nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
        else:
            self.layer_scale_1 = self.layer_scale_2 = None
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = InceptionMixer(dim, num_heads, attention_head, qkv_bias=qkv_bias,
                                   attn_drop=attn_drop, proj_drop=drop, pool_size=pool_size)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attn(self.norm1(x))
        if self.layer_scale_1 is not None:
            y = self.layer_scale_1 * y
        x = x + self.drop_path(y)
        y = self.mlp(self.norm2(x))
        if self.layer_scale_2 is not None:
            y = self.layer_scale_2 * y
        return x + self.drop_path(y)


# --------------------------------------------------------------------------------------------
# The whole network
# --------------------------------------------------------------------------------------------


class InceptionTransformer(nn.Module):
    """iFormer. Keys: ``patch_embed``, ``pos_embed1..4``, ``blocks1..4``,
    ``patch_embed2..4``, ``norm``, ``head``. NCHW images in, logits out."""

    def __init__(self, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000,
                 embed_dims: Sequence[int] = (96, 192, 320, 384),
                 depths: Sequence[int] = (3, 3, 9, 3),
                 num_heads: Sequence[int] = (3, 6, 10, 12),
                 attention_heads: Sequence[int] = (1,) * 3 + (3,) * 3 + (7,) * 4 + (9,) * 5
                 + (11,) * 3,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 use_layer_scale: bool = True, layer_scale_init_value: float = 1e-6,
                 pool_sizes: Sequence[int] = (2, 2, 1, 1)):
        super().__init__()
        total = sum(depths)
        if len(attention_heads) != total:
            raise ValueError(f"attention_heads needs one entry per block ({total}), "
                             f"got {len(attention_heads)}")
        self.num_classes = num_classes
        self.embed_dims = tuple(embed_dims)
        dpr = [drop_path_rate * k / (total - 1) if total > 1 else 0.0 for k in range(total)]

        self.patch_embed = Stem(in_chans, embed_dims[0])
        start = 0
        for s in range(4):
            side = img_size // (4 * 2 ** s)
            if s > 0:
                setattr(self, f"patch_embed{s + 1}", PatchEmbed(embed_dims[s - 1], embed_dims[s]))
            setattr(self, f"pos_embed{s + 1}",
                    nn.Parameter(torch.zeros(1, side, side, embed_dims[s])))
            blocks = [
                Block(embed_dims[s], num_heads[s], attention_heads[start + i],
                      mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate,
                      attn_drop=attn_drop_rate, drop_path=dpr[start + i],
                      pool_size=pool_sizes[s], use_layer_scale=use_layer_scale and s >= 2,
                      layer_scale_init_value=layer_scale_init_value)
                for i in range(depths[s])
            ]
            setattr(self, f"blocks{s + 1}", nn.Sequential(*blocks))
            start += depths[s]
        self.norm = nn.LayerNorm(embed_dims[-1], eps=1e-6)
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        init_like_authors(self)

    @staticmethod
    def _pos_embed(pos: torch.Tensor, H: int, W: int) -> torch.Tensor:
        if pos.shape[1:3] == (H, W):
            return pos
        pos = F.interpolate(pos.permute(0, 3, 1, 2), size=(H, W), mode="bilinear",
                            align_corners=False)
        return pos.permute(0, 2, 3, 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Channel-last feature map after stage 4 and the final LayerNorm."""
        x = self.patch_embed(x)
        for s in range(1, 5):
            if s > 1:
                x = getattr(self, f"patch_embed{s}")(x)
            x = x + self._pos_embed(getattr(self, f"pos_embed{s}"), x.shape[1], x.shape[2])
            x = getattr(self, f"blocks{s}")(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x).mean(dim=(1, 2)))


# --------------------------------------------------------------------------------------------
# Configurations, initialisation, loading
# --------------------------------------------------------------------------------------------

_SMALL = dict(depths=(3, 3, 9, 3), embed_dims=(96, 192, 320, 384), num_heads=(3, 6, 10, 12),
              attention_heads=(1,) * 3 + (3,) * 3 + (7,) * 4 + (9,) * 5 + (11,) * 3)
_BASE = dict(depths=(4, 6, 14, 6), embed_dims=(96, 192, 384, 512), num_heads=(3, 6, 12, 16),
             attention_heads=(1,) * 4 + (3,) * 6 + (8,) * 7 + (10,) * 7 + (15,) * 6)
_LARGE = dict(depths=(4, 6, 18, 8), embed_dims=(96, 192, 448, 640), num_heads=(3, 6, 14, 20),
              attention_heads=(1,) * 4 + (3,) * 6 + (10,) * 9 + (12,) * 9 + (19,) * 8)

#: Named configurations: constructor keyword arguments of :class:`InceptionTransformer`.
CONFIGS: dict[str, dict] = {
    "iformer_small": dict(img_size=224, num_classes=1000, **_SMALL),
    "iformer_base": dict(img_size=224, num_classes=1000, **_BASE),
    "iformer_large": dict(img_size=224, num_classes=1000, **_LARGE),
    "iformer_small_384": dict(img_size=384, num_classes=1000, **_SMALL),
    "iformer_base_384": dict(img_size=384, num_classes=1000, **_BASE),
    "iformer_large_384": dict(img_size=384, num_classes=1000, **_LARGE),
    # The configuration of the authors' test vectors (iformer_mini_vectors.npz).
    "mini": dict(img_size=64, in_chans=3, num_classes=10, depths=(1, 1, 2, 1),
                 embed_dims=(48, 96, 160, 192), num_heads=(3, 6, 10, 12),
                 attention_heads=(1, 3, 7, 9, 11)),
}
for _config in CONFIGS.values():
    _config.update(use_layer_scale=True, layer_scale_init_value=1e-6, qkv_bias=True)


def build(name_or_config: str | Mapping, **overrides) -> InceptionTransformer:
    """An :class:`InceptionTransformer` from a name in :data:`CONFIGS` (e.g. "iformer_small",
    "iformer_small_384", "mini") or a dict of constructor arguments; ``overrides`` replace
    individual arguments (e.g. ``drop_path_rate=0.1``)."""
    if isinstance(name_or_config, str):
        try:
            config = dict(CONFIGS[name_or_config])
        except KeyError:
            raise ValueError(f"unknown iFormer configuration {name_or_config!r}; "
                             f"known: {sorted(CONFIGS)}") from None
    else:
        config = dict(name_or_config)
    config.update(overrides)
    return InceptionTransformer(**config)


@torch.no_grad()
def init_like_authors(model: nn.Module) -> nn.Module:
    """The authors' initialisation: Linear/Conv2d weights and position embeddings truncated
    normal (std 0.02, cut at [-2, 2]), biases 0, LayerNorm/BatchNorm weights 1 and biases 0.
    Layer scales keep their constructor value. Returns ``model``."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for name, param in model.named_parameters():
        if name.split(".")[-1].startswith("pos_embed"):
            nn.init.trunc_normal_(param, std=0.02, a=-2.0, b=2.0)
    return model


def load_numpy_state_dict(model: nn.Module, arrays: Mapping[str, np.ndarray],
                          prefix: str = "") -> nn.Module:
    """Load a state dict given as NumPy arrays (strict: every key, every shape).

    With ``prefix`` only the entries whose key starts with it are used, with the prefix
    stripped (``prefix="param/"`` for the test vectors). Dtypes follow the model's tensors
    (float parameters, int64 ``num_batches_tracked``). Returns ``model``.
    """
    own = model.state_dict()
    state = {}
    for key, value in arrays.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        dtype = own[name].dtype if name in own else None
        state[name] = torch.tensor(np.asarray(value), dtype=dtype)
    model.load_state_dict(state, strict=True)
    return model
