"""``train_cifar.py``: train iFormer on CIFAR-10/100 or an ImageNet-style folder, resumably.

    python train_cifar.py                              # defaults, in runs/train/exp, exp2, ...
    python train_cifar.py --resume                     # continue the latest of those exactly
    python train_cifar.py --epochs 30 --out runs/c10   # choose the length and the folder
    python train_cifar.py --resume --out runs/c10      # continue runs/c10 exactly
    python train_cifar.py --out runs/c10 --overwrite   # replace the run runs/c10 holds
    python train_cifar.py --eval-only --checkpoint runs/c10/best.npz

The output folder holds ``last.npz`` (the whole run state, written every ``--save-every``
steps, at each epoch end and on Ctrl-C), ``best.npz`` (the same, at the best test Acc@1),
``metrics.csv`` and ``curves.png`` (updated every epoch), and ``config.json``. A new run never
writes into a folder holding another run (``--overwrite`` replaces it), and a live run locks
its folder (``.lock``) against any other: see :mod:`.runs`.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .. import backend, checkpoint, data, random, runtime
from ..checkpoint import CheckpointError
from ..cli import UsageError, one_line, report_error
from ..data import DatasetError
from ..data import transforms as T
from ..models import create_model, model_config
from ..optim import AdamW, WarmupCosine, param_groups_weight_decay
from .engine import DeviceBatches, NonFiniteLossError, RunState, evaluate, train_steps
from .options import build_parser
from .records import write_atomic, write_metrics
from .runs import RunFolder, RunFolderError, claim
from .state import load_training_state, save_training_state

__all__ = ["main", "build_parser"]


# -- data ---------------------------------------------------------------------------------------
def _datasets(args: argparse.Namespace, img_size: int) -> tuple[Any, Any, int]:
    train: data.Dataset
    test: data.Dataset
    if args.dataset in ("cifar10", "cifar100"):
        cls = data.CIFAR10 if args.dataset == "cifar10" else data.CIFAR100
        mean, std = (
            (T.CIFAR10_MEAN, T.CIFAR10_STD)
            if args.dataset == "cifar10"
            else (T.CIFAR100_MEAN, T.CIFAR100_STD)
        )
        common = dict(download=not args.no_download, verify=not args.no_verify)
        train = cls(
            args.data_dir,
            train=True,
            transform=T.cifar_train_transform(mean, std, randaugment=args.randaugment),
            **common,
        )
        test = cls(
            args.data_dir,
            train=False,
            transform=T.Compose([T.ToArray(), T.Normalize(mean, std)]),
            **common,
        )
    else:
        root = Path(args.data_dir)
        mean, std = T.IMAGENET_MEAN, T.IMAGENET_STD
        folder = data.ImageFolder(
            root / "train",
            transform=T.train_transform_for(img_size, mean, std, randaugment=args.randaugment),
        )
        test = data.ImageFolder(
            root / "val",
            transform=T.eval_transform_for(img_size, mean, std),
            class_to_idx=folder.class_to_idx,
        )
        train = folder
    if args.subset:
        train = data.Subset(train, args.subset)
    if args.test_subset:
        test = data.Subset(test, args.test_subset)
    return train, test, len(train.classes)


# -- the run ------------------------------------------------------------------------------------
class _Stop:
    """Turns SIGINT/SIGTERM into a request to save and stop after the current step."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # a second Ctrl-C: give up waiting, the last save stands
            raise KeyboardInterrupt
        self.signal = signum
        print(
            "\nstopping after this step, saving a resumable checkpoint "
            "(press Ctrl-C again to quit without saving)",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _load_start_weights(model: Any, path: str, model_name: str) -> None:
    """Weights to start from; a classifier of another size is left as initialised."""
    state = checkpoint.load_weights(path)
    own = model.state_dict()
    skipped = [
        k
        for k in ("head.weight", "head.bias")
        if k in state and k in own and state[k].shape != own[k].shape
    ]
    for k in skipped:
        del state[k]
    try:
        missing, _ = model.load_state_dict(state, strict=False)
    except ValueError as exc:
        raise UsageError(
            f"--checkpoint: {path} does not fit --model {model_name}: {one_line(exc)}"
        ) from exc
    missing = [k for k in missing if k not in skipped]
    if missing:
        raise UsageError(f"{path} does not fit the model: missing keys {', '.join(missing[:5])}")
    if skipped:
        print(
            f"{path}: the head has another number of classes; it starts from scratch",
            file=sys.stderr,
        )


#: Options that decide what a run computes: a resumed run must use the values it started with.
RUN_OPTIONS = (
    "model",
    "dataset",
    "subset",
    "epochs",
    "batch_size",
    "lr",
    "min_lr",
    "warmup_lr",
    "weight_decay",
    "warmup_epochs",
    "clip_grad",
    "drop_path",
    "label_smoothing",
    "mixup",
    "cutmix",
    "randaugment",
    "img_size",
    "seed",
)


def _check_same_run(path: Path, saved: dict[str, Any], now: dict[str, Any]) -> None:
    changed = [
        f"--{k.replace('_', '-')} {saved.get(k)} (now {now.get(k)})"
        for k in RUN_OPTIONS
        if saved.get(k) != now.get(k)
    ]
    if changed:
        raise UsageError(
            f"--resume: {path} was started with {', '.join(changed)}; resume with "
            "the same options, or start a new run in another --out folder"
        )


def resume(
    path: Path, options: dict[str, Any], model: Any, optimizer: Any, schedule: Any, loader: Any
) -> RunState:
    """Restore a run from the training checkpoint at ``path``; its :class:`RunState`.

    Everything in the file is checked by the object that takes it; whatever is wrong (a
    damaged file, a checkpoint of another run, a state that does not fit) is raised as one
    :class:`UsageError` naming the file and the reason.
    """
    if not path.is_file():
        raise UsageError(f"--resume: no checkpoint at {path}")
    weights, saved = load_training_state(path)
    try:
        if not isinstance(saved, dict):
            raise ValueError("its training state is not a dict")
        missing = [
            k
            for k in ("config", "optimizer", "schedule", "loader", "random", "run")
            if k not in saved
        ]
        if missing:
            raise ValueError(f"its training state lacks {', '.join(missing)}")
        if not isinstance(saved["config"], dict):
            raise ValueError("its config is not a dict")
        _check_same_run(path, saved["config"], options)
        model.load_state_dict(weights)
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        loader.load_state_dict(saved["loader"])
        random.set_state(saved["random"])
        return RunState.from_dict(saved["run"])
    except UsageError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise UsageError(f"--resume: {path} cannot be resumed: {one_line(reason)}") from exc


def run(args: argparse.Namespace) -> int:
    backend.set_backend(args.backend)
    runtime.keep_freed_memory()  # freed activations are reused, not page-faulted in again
    if args.eval_only:  # writes nothing: no run folder
        return _run(args, None)
    with claim(args.out, args.resume, args.overwrite) as folder:  # locked before any write
        args.out = str(folder.path)
        return _run(args, folder)


def _run(args: argparse.Namespace, folder: RunFolder | None) -> int:

    img_size = args.img_size or model_config(args.model)["img_size"]
    train_set, test_set, num_classes = _datasets(args, img_size)

    random.manual_seed(args.seed)
    # The model keeps the size its configuration was made for: at another --img-size its
    # position embeddings are resized on the fly, so weights load across sizes.
    model = create_model(args.model, num_classes=num_classes, drop_path_rate=args.drop_path)
    if args.checkpoint:
        _load_start_weights(model, args.checkpoint, args.model)
    test_loader = data.DataLoader(
        test_set, args.eval_batch_size, shuffle=False, num_workers=args.workers, seed=args.seed
    )
    if args.eval_only:
        if not args.checkpoint:
            raise UsageError("--eval-only needs --checkpoint PATH")
        result = evaluate(model, test_loader, num_classes)
        print(
            f" * Acc@1 {result['acc1']:.3f} Acc@5 {result['acc5']:.3f} "
            f"loss {result['loss']:.4f} ({len(test_set)} images)"
        )
        return 0

    mix = None
    if args.mixup > 0 or args.cutmix > 0:
        mix = T.MixupCutmix(
            mixup_alpha=args.mixup,
            cutmix_alpha=args.cutmix,
            label_smoothing=args.label_smoothing,
            num_classes=num_classes,
        )
    if args.batch_size > len(train_set):
        raise UsageError(
            f"--batch-size {args.batch_size} is larger than the {len(train_set)} training images"
        )
    loader = data.DataLoader(
        train_set,
        args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        seed=args.seed,
        batch_transform=mix,
    )
    steps = args.epochs * len(loader)
    warmup = min(steps, int(round(args.warmup_epochs * len(loader))))
    optimizer = AdamW(param_groups_weight_decay(model, args.weight_decay), lr=args.lr)
    schedule = WarmupCosine(
        optimizer, steps, warmup_steps=warmup, warmup_lr=args.warmup_lr, min_lr=args.min_lr
    )
    state = RunState()

    assert folder is not None
    out = folder.path
    last = out / "last.npz"
    if folder.checkpoint is not None:
        path = folder.checkpoint
        state = resume(path, vars(args), model, optimizer, schedule, loader)
        print(
            f"resuming {path}{folder.note}: epoch {state.epoch + 1}, step {state.global_step}",
            file=sys.stderr,
        )
    else:
        loader.set_epoch(0)
    if not folder.own:
        print(
            f"run folder: {out}"
            + (
                f" (replacing the run it held: {len(folder.replacing)} files)"
                if folder.replacing
                else ""
            ),
            file=sys.stderr,
        )
    folder.prepare()  # deletes a replaced run's files and a killed run's temporaries
    config = dict(vars(args))
    write_atomic(out / "config.json", json.dumps(config, indent=2).encode())

    feed = DeviceBatches(loader)  # copies batches to the GPU ahead of use on CuPy

    def save(path: Path) -> None:
        save_training_state(
            path,
            model.state_dict(),
            {
                "config": config,
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "loader": feed.state_dict(),
                "random": random.get_state(),
                "run": state.to_dict(),
            },
        )

    with _Stop() as stop:
        while state.epoch < args.epochs:
            done = _train_epoch(args, model, feed, optimizer, schedule, state, stop, save, last)
            if not done:
                print(
                    f"saved {last}; continue with: train_cifar.py --resume --out {out}",
                    file=sys.stderr,
                )
                return 130 if stop.signal == signal.SIGINT else 143
            result = evaluate(model, test_loader, num_classes)
            row = {
                "epoch": state.epoch + 1,
                "train_loss": state.loss_sum / max(state.seen, 1),
                "train_acc1": (100.0 * state.correct / state.seen) if mix is None else "",
                "test_loss": result["loss"],
                "test_acc1": result["acc1"],
                "test_acc5": result["acc5"],
                "lr": optimizer.param_groups[0]["lr"],
                "epoch_seconds": state.train_seconds,
                "images_per_second": state.seen / max(state.train_seconds, 1e-9),
                "gpu_memory_mib": runtime.gpu_memory_peak_mib() or "",
            }
            state.history.append(row)
            print(
                f"epoch {row['epoch']}/{args.epochs}: train loss {row['train_loss']:.4f}, "
                f"test loss {result['loss']:.4f}, Acc@1 {result['acc1']:.2f}, "
                f"Acc@5 {result['acc5']:.2f}, {row['images_per_second']:.1f} images/s"
                + (
                    f", peak GPU memory {row['gpu_memory_mib']:.0f} MiB"
                    if row["gpu_memory_mib"]
                    else ""
                ),
                file=sys.stderr,
                flush=True,
            )
            improved = result["acc1"] > state.best_acc1
            state.best_acc1 = max(state.best_acc1, result["acc1"])
            state.start_epoch(state.epoch + 1)
            feed.set_epoch(state.epoch)
            save(last)
            if improved:
                save(out / "best.npz")
            write_metrics(out, state.history)
    print(f"done: best test Acc@1 {state.best_acc1:.2f}; files in {out}", file=sys.stderr)
    return 0


def _sync_every(args) -> int:
    """Steps between reads of the loss from the GPU (1 on NumPy, where reading is free): the
    progress bar, Ctrl-C and the periodic saves act at those points."""
    if backend.get_backend() == "numpy":
        return 1
    return math.gcd(args.save_every, args.log_every)


def _train_epoch(args, model, loader, optimizer, schedule, state, stop, save, last) -> bool:
    bar = None
    if not args.no_progress:
        bar = tqdm(
            total=len(loader),
            initial=loader.state_dict()["position"],
            desc=f"epoch {state.epoch + 1}/{args.epochs}",
            unit="batch",
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
        )

    shown = [state.global_step]

    def after_step(s: RunState, loss: float) -> bool:
        saving = s.global_step // args.save_every > shown[0] // args.save_every
        steps, shown[0] = s.global_step - shown[0], s.global_step
        if bar is not None:
            postfix = {
                "loss": f"{s.loss_sum / s.seen:.3f}",
                "lr": f"{optimizer.param_groups[0]['lr']:.2e}",
                "img/s": f"{s.seen / max(s.train_seconds, 1e-9):.0f}",
            }
            if s.correct:
                postfix["acc"] = f"{100.0 * s.correct / s.seen:.1f}"
            bar.set_postfix(postfix, refresh=False)
            bar.update(steps)
        if stop.signal is not None or saving:
            save(last)
        return stop.signal is not None

    try:
        return train_steps(
            model,
            loader,
            optimizer,
            schedule,
            state,
            label_smoothing=args.label_smoothing,
            clip_grad=args.clip_grad,
            after_step=after_step,
            sync_every=_sync_every(args),
        )
    finally:
        if bar is not None:
            bar.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except NonFiniteLossError as exc:
        return report_error(
            f"{exc}; stopped without saving, so {Path(args.out) / 'last.npz'} "
            "still holds the last good state (try a lower --lr or --clip-grad)",
            status=1,
        )
    except (
        UsageError,
        RunFolderError,
        CheckpointError,
        DatasetError,
        backend.BackendUnavailableError,
    ) as exc:
        return report_error(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
