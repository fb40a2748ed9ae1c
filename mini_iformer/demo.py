"""A small demonstration of the engine: a two-layer network learns the two-spirals problem.

Run it with ``python -m mini_iformer.demo``; invalid options exit with status 2 and argparse's
usage message, without a traceback. Everything here is the library's public API:
tensors, operators, ``backward()``, ``no_grad()`` for the update, and a finite-difference
check of one gradient at the end.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import mini_iformer as mi


def two_spirals(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points per class on two interleaved spirals, with a little noise."""
    t = np.sqrt(rng.random(n)) * 3 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)
    x = np.concatenate([arm, -arm]) + rng.normal(0, 0.02, (2 * n, 2))
    y = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
    return x.astype(np.float32), y


def init(shape: tuple[int, int], rng: np.random.Generator) -> mi.Tensor:
    return mi.tensor(
        rng.normal(0, np.sqrt(2 / shape[0]), shape).astype(np.float32), requires_grad=True
    )


def forward(params: list[mi.Tensor], x: mi.Tensor) -> mi.Tensor:
    w1, b1, w2, b2, w3, b3 = params
    h = mi.tanh(x @ w1 + b1)
    h = mi.tanh(h @ w2 + b2)
    return h @ w3 + b3


def cross_entropy(logits: mi.Tensor, onehot: mi.Tensor) -> mi.Tensor:
    return -(mi.log_softmax(logits, axis=1) * onehot).sum(axis=1).mean()


def gradient(p: mi.Tensor) -> mi.Tensor:
    """``p.grad``, which ``backward()`` has set: every parameter here takes part in the loss."""
    if p.grad is None:
        raise RuntimeError("backward() left a parameter without a gradient")
    return p.grad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mini_iformer.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    parser.add_argument(
        "--hidden", type=int, default=32, help="hidden units per layer (default 32)"
    )
    parser.add_argument("--lr", type=float, default=0.5, help="learning rate (default 0.5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--backend",
        choices=mi.backend.BACKENDS,
        default=None,
        help="array backend (default: numpy, or MINI_IFORMER_BACKEND)",
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.hidden < 1 or not 0 < args.lr < float("inf"):
        parser.error(
            f"--steps and --hidden must be positive and --lr a finite number greater "
            f"than 0, got --steps {args.steps} --hidden {args.hidden} --lr {args.lr}"
        )
    if args.seed < 0:
        parser.error(f"--seed must be at least 0, got {args.seed}")
    if args.backend:
        try:
            mi.set_backend(args.backend)
        except mi.BackendUnavailableError as exc:
            parser.exit(2, f"error: {exc}\n")

    rng = np.random.default_rng(args.seed)
    x_np, y_np = two_spirals(200, rng)
    x, onehot = mi.tensor(x_np), mi.tensor(np.eye(2, dtype=np.float32)[y_np])
    h = args.hidden
    params = [
        init((2, h), rng),
        mi.zeros(h, requires_grad=True),
        init((h, h), rng),
        mi.zeros(h, requires_grad=True),
        init((h, 2), rng),
        mi.zeros(2, requires_grad=True),
    ]
    n_params = sum(p.size for p in params)
    print(
        f"two spirals: {len(y_np)} points, a 2-{h}-{h}-2 tanh network ({n_params} parameters), "
        f"backend {mi.get_backend()}"
    )

    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        loss = cross_entropy(forward(params, x), onehot)
        for p in params:
            p.grad = None
        loss.backward()
        with mi.no_grad():  # the update itself must not become part of any graph
            for p in params:
                p.data -= args.lr * gradient(p).data
        if step == 1 or step % max(1, args.steps // 10) == 0:
            with mi.no_grad():
                acc = float((forward(params, x).numpy().argmax(1) == y_np).mean())
            print(f"step {step:5d}   loss {loss.item():.4f}   accuracy {acc:6.1%}")
    elapsed = time.perf_counter() - start
    print(f"trained in {elapsed:.1f} s ({args.steps / elapsed:.0f} steps/s)")

    # The engine's gradient against a finite difference, along a random direction, in float64.
    p64 = [mi.tensor(p.numpy().astype(np.float64), requires_grad=True) for p in params]
    x64, t64 = mi.tensor(x_np.astype(np.float64)), mi.tensor(onehot.numpy().astype(np.float64))
    cross_entropy(forward(p64, x64), t64).backward()
    direction = [rng.standard_normal(p.shape) for p in p64]
    analytic = sum(float((gradient(p).numpy() * d).sum()) for p, d in zip(p64, direction))
    eps = 1e-6

    def loss_at(sign: float) -> float:
        moved = [mi.tensor(p.numpy() + sign * eps * d) for p, d in zip(p64, direction)]
        with mi.no_grad():
            return cross_entropy(forward(moved, x64), t64).item()

    numeric = (loss_at(1.0) - loss_at(-1.0)) / (2 * eps)
    rel = abs(numeric - analytic) / max(1e-12, abs(numeric))
    print(
        f"gradient check: backward {analytic:.8f}, finite difference {numeric:.8f} "
        f"(relative difference {rel:.1e})"
    )
    return 0 if rel < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
