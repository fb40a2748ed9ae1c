"""The paper's Fourier analysis: how much high frequency each block of a network lets through.

The iFormer paper's central picture (its Figure 1) compares the Fourier spectra of feature
maps: in an attention-only transformer the blocks keep mostly low frequencies (attention
averages over tokens, a low-pass filter), while iFormer's inception mixer, whose
high-frequency side is a max-pool path and a depthwise convolution, keeps high frequencies
alive, most of all in the early blocks where the ramp gives it most channels.

The measurement, for the output Z (B, H, W, C) of every block:

1. the 2-D discrete Fourier transform of each channel of each image, F = FFT2(Z[b, :, :, c]);
2. its log amplitude log|F| (amplitudes below 1e-8 of the map's largest are raised to that
   floor, so that a spectrum with exact zeros stays finite), averaged over images and channels;
3. read along the diagonal of the frequency plane, from (0, 0) to (pi, pi): frequency
   omega = 2 pi k / H for k = 0 .. H // 2 (pi itself when H is even);
4. relative to the zero frequency: delta(omega) = mean log|F(omega)| - mean log|F(0)|.

``delta`` is 0 at omega = 0 by construction; the more negative it is at high omega, the more
that block has smoothed its input. The value at the highest frequency (pi) summarises a
block in one number (:attr:`Spectrum.high`).

Command line (a PNG in the paper's style: one panel per model with one curve per block,
coloured by depth, and a panel of the high-frequency value against depth)::

    python -m mini_iformer.analysis --data-dir data --dataset cifar10 --no-verify \\
        --run "iFormer=iformer_cifar:runs/a/best.npz" \\
        --run "attention only=iformer_cifar_all_attention:runs/b/best.npz" \\
        --run "high-frequency only=iformer_cifar_all_high" --out spectrum.png

A run without a checkpoint is the untrained (seeded) network. ``--json`` also writes the
numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import backend, data, random
from .autograd import Tensor, no_grad
from .checkpoint import CheckpointError
from .cli import report_error
from .models import Block, create_model, model_config
from .validate import evaluation_dataset

__all__ = ["Spectrum", "relative_log_amplitude", "block_feature_maps", "spectrum", "plot", "main"]

#: Amplitudes below this fraction of a map's largest are raised to it before the log.
FLOOR = 1e-8


@dataclass
class Spectrum:
    """The relative log amplitude of every block of one model (see the module docstring).

    ``names[i]`` is block i's module name (in depth order), ``frequencies[i]`` its frequencies
    (0 .. pi, as many as its map size allows) and ``curves[i]`` delta at those frequencies.
    """

    label: str
    names: list[str]
    frequencies: list[np.ndarray]
    curves: list[np.ndarray]
    images: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def high(self) -> np.ndarray:
        """delta at each block's highest frequency (pi for even map sizes)."""
        return np.array([c[-1] for c in self.curves])

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "images": self.images,
            **self.extra,
            "blocks": [
                {"name": n, "frequencies": f.tolist(), "delta_log_amplitude": c.tolist()}
                for n, f, c in zip(self.names, self.frequencies, self.curves)
            ],
        }


def _log_amplitude_sums(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Frequencies, the sum over images and channels of the diagonal log amplitudes, and how
    many (image, channel) maps were summed, for channel-last maps (B, H, W, C)."""
    if maps.ndim != 4:
        raise ValueError(f"feature maps must be (B, H, W, C), got shape {maps.shape}")
    b, h, w, c = maps.shape
    if h != w:
        raise ValueError(
            f"the diagonal spectrum needs square maps, got {h}x{w} (shape {maps.shape})"
        )
    planes = np.moveaxis(np.asarray(maps, dtype=np.float64), 3, 1)  # (B, C, H, W)
    amplitude = np.abs(np.fft.fft2(planes, axes=(-2, -1)))
    largest = amplitude.max(axis=(-2, -1), keepdims=True)
    floor = np.where(largest > 0, largest * FLOOR, np.finfo(np.float64).tiny)
    log_amp = np.log(np.maximum(amplitude, floor))
    k = np.arange(h // 2 + 1)
    # unshifted FFT: frequency index k along each axis is 2 pi k / H (index H - k is -2 pi k / H,
    # the same amplitude for a real map); the diagonal (k, k) runs from (0, 0) to (pi, pi)
    diagonal = log_amp[:, :, k, k]
    return 2 * np.pi * k / h, diagonal.sum(axis=(0, 1)), b * c


def relative_log_amplitude(maps: Any) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, delta) of channel-last feature maps (B, H, W, C): the mean over images and
    channels of the diagonal log amplitude, minus its value at frequency 0."""
    if isinstance(maps, Tensor):
        maps = maps.numpy()
    freqs, sums, count = _log_amplitude_sums(backend.to_numpy(maps))
    mean = sums / count
    return freqs, mean - mean[0]


def _blocks(model: Any) -> list[tuple[str, Any]]:
    blocks = [(name, m) for name, m in model.named_modules() if isinstance(m, Block)]
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no iFormer Block modules to analyse")
    return blocks


WHAT = ("output", "update")


def block_feature_maps(model: Any, images: Any, what: str = "output") -> dict[str, np.ndarray]:
    """Every block's output (B, H, W, C) for ``images`` (B, 3, H, W), in evaluation mode; with
    ``what="update"``, what the block adds to its input instead (output minus input: the
    mixer's and the MLP's residual branches, each scaled by its layer scale)."""
    if what not in WHAT:
        raise ValueError(f"what must be one of {WHAT}, got {what!r}")
    captured: dict[str, np.ndarray] = {}

    def keep(name, inputs, out):
        value = out.numpy()
        captured[name] = value - inputs[0].numpy() if what == "update" else value

    handles = [
        m.register_forward_hook(lambda mod, inputs, out, name=name: keep(name, inputs, out))
        for name, m in _blocks(model)
    ]
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            model(images if isinstance(images, Tensor) else Tensor(backend.asarray(images)))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return captured


def spectrum(
    model: Any, images: Any, *, label: str = "", batch_size: int = 32, what: str = "output"
) -> Spectrum:
    """The relative log amplitude of every block of ``model`` over ``images`` (N, 3, H, W),
    processed ``batch_size`` images at a time; see the module docstring. ``what="update"``
    measures what each block adds to its input rather than its output (the paper measures
    outputs; a block's output is mostly its input carried by the residual connection)."""
    images = backend.to_numpy(images.data if isinstance(images, Tensor) else images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty (N, 3, H, W) batch, got shape {images.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    names = [name for name, _ in _blocks(model)]
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    freqs: dict[str, np.ndarray] = {}
    for start in range(0, images.shape[0], batch_size):
        maps = block_feature_maps(model, images[start : start + batch_size], what)
        for name in names:
            f, s, n = _log_amplitude_sums(maps[name])
            freqs[name] = f
            sums[name] = sums.get(name, 0.0) + s
            counts[name] = counts.get(name, 0) + n
    curves = []
    for name in names:
        mean = sums[name] / counts[name]
        curves.append(mean - mean[0])
    return Spectrum(
        label or type(model).__name__,
        names,
        [freqs[n] for n in names],
        curves,
        images=int(images.shape[0]),
        extra={"what": what},
    )


def plot(spectra: Sequence[Spectrum], path: str | Path | None = None, *, title: str = "") -> Any:
    """The paper-style figure: one panel per spectrum (delta log amplitude against frequency,
    one curve per block, coloured from early (dark) to late (bright) blocks) and a last panel
    with every model's high-frequency value against block depth. Saved to ``path`` (PNG) when
    given; returns the matplotlib figure."""
    import matplotlib  # noqa: PLC0415 - slow to import; only the figure needs it

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    if not spectra:
        raise ValueError("plot: no spectra to draw")
    n = len(spectra)
    fig, axes = plt.subplots(1, n + 1, figsize=(3.3 * (n + 1), 3.2), squeeze=False)
    axes = axes[0]
    cmap = matplotlib.colormaps["plasma"]
    low = min(float(np.min(c)) for s in spectra for c in s.curves)
    for ax, s in zip(axes, spectra):
        depth = len(s.curves)
        for i, (f, c) in enumerate(zip(s.frequencies, s.curves)):
            ax.plot(
                f / np.pi,
                c,
                color=cmap(0.85 * i / max(depth - 1, 1)),
                lw=1.4,
                marker="o" if len(f) <= 3 else None,
                ms=3,
            )
        ax.set(title=s.label, xlabel="frequency", xlim=(0, 1), ylim=(min(low, -0.5) * 1.05, 0.3))
        ax.set_xticks([0, 0.5, 1.0], ["0", "π/2", "π"])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Δ log amplitude")
    sm = matplotlib.cm.ScalarMappable(cmap=cmap, norm=matplotlib.colors.Normalize(0, 1))
    fig.colorbar(sm, ax=axes[n - 1], fraction=0.05, pad=0.02, label="depth (first → last block)")
    ax = axes[n]
    for s in spectra:
        depths = np.linspace(0, 1, len(s.curves)) if len(s.curves) > 1 else np.zeros(1)
        ax.plot(depths, s.high, "o-", ms=3, label=s.label)
    ax.set(title="high frequency (π)", xlabel="normalised depth", ylabel="Δ log amplitude at π")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig


# -- command line ----------------------------------------------------------------------------
def _parse_run(text: str) -> tuple[str, str, str | None]:
    """'LABEL=MODEL[:CHECKPOINT]' or 'MODEL[:CHECKPOINT]' -> (label, model, checkpoint)."""
    label, sep, rest = text.partition("=")
    if not sep:
        label, rest = "", text
    model, _, ckpt = rest.partition(":")
    if not model:
        raise argparse.ArgumentTypeError(f"--run {text!r}: expected LABEL=MODEL[:CHECKPOINT]")
    return label or model, model, ckpt or None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mini_iformer.analysis",
        description="Relative log amplitude of every block's feature maps (the iFormer paper's "
        "Fourier analysis), plotted in the paper's style.",
    )
    p.add_argument(
        "--run",
        action="append",
        type=_parse_run,
        default=[],
        metavar="LABEL=MODEL[:CHECKPOINT]",
        help="a model to analyse (repeat to compare); no checkpoint: untrained",
    )
    p.add_argument("--model", help="shortcut for one --run: the model name")
    p.add_argument("--checkpoint", help="with --model: its weights")
    p.add_argument(
        "--data-dir",
        required=True,
        help="the CIFAR folder, or a folder of class folders (or one holding val/)",
    )
    p.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "folder"])
    p.add_argument("--no-verify", action="store_true", help="skip the CIFAR checksum check")
    p.add_argument("--img-size", type=int, default=None, help="image size for folder datasets")
    p.add_argument("--images", type=int, default=256, help="test images to average over")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="initialisation of untrained models")
    p.add_argument(
        "--what",
        default="output",
        choices=WHAT,
        help="each block's output (the paper's measurement) or its update (output minus input)",
    )
    p.add_argument("--out", default="spectrum.png", help="the PNG to write")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    return p


def _images(args: argparse.Namespace, size: int) -> tuple[np.ndarray, int]:
    ns = argparse.Namespace(
        dataset=args.dataset,
        data_dir=args.data_dir,
        no_verify=args.no_verify,
        crop_pct=0.9,
        imagenet_classes=False,
    )
    ds, classes = evaluation_dataset(ns, size)
    n = min(args.images, len(ds))
    rng = np.random.default_rng(0)
    return np.stack([ds.get(i, rng)[0] for i in range(n)]).astype(np.float32), classes


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    runs = list(args.run)
    if args.model:
        runs.append((args.model, args.model, args.checkpoint))
    elif args.checkpoint:
        return report_error("--checkpoint needs --model (or use --run LABEL=MODEL:CHECKPOINT)")
    if not runs:
        return report_error(
            "name at least one model with --run LABEL=MODEL[:CHECKPOINT] or --model"
        )
    if args.images < 1 or args.batch_size < 1:
        return report_error("--images and --batch-size must be positive")
    try:
        backend.set_backend(args.backend)
        sizes = {model_config(m)["img_size"] for _, m, _ in runs}
        size = args.img_size or max(sizes)
        images, classes = _images(args, size)
        spectra = []
        for label, name, ckpt in runs:
            random.manual_seed(args.seed)
            model = create_model(name, num_classes=classes, checkpoint=ckpt)
            s = spectrum(model, images, label=label, batch_size=args.batch_size, what=args.what)
            s.extra.update(model=name, checkpoint=ckpt)
            spectra.append(s)
            print(
                f"{label}: high-frequency Δ log amplitude per block "
                + " ".join(f"{v:.2f}" for v in s.high),
                file=sys.stderr,
            )
    except KeyError as exc:
        return report_error(exc.args[0] if exc.args else exc)
    except (CheckpointError, data.DatasetError, backend.BackendUnavailableError, ValueError) as exc:
        return report_error(exc)
    plot(
        spectra,
        args.out,
        title=f"{len(images)} test images, {size}x{size}, block "
        + ("outputs" if args.what == "output" else "updates (output - input)"),
    )
    print(f"wrote {args.out}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps([s.to_dict() for s in spectra], indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
