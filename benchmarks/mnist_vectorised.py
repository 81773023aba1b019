"""Benchmark: the vectorised MNIST trainer against a one-model-at-a-time loop, same work.

Prints, side by side from one run:
  * seconds per training step (batch 1024, all M models) for both trainers, and the ratio;
  * the vectorised trainer's achieved GFLOP/s against a plain batched-matmul peak measured
    here with the same shapes, and the fraction of that peak.

FLOPs are the matmul FLOPs actually executed: forward 2 per multiply-add, backward 4 per
multiply-add for layers 2-3 and 2 for layer 1 (whose input needs no gradient).

    python benchmarks/mnist_vectorised.py [--models 10] [--steps 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from sublim import mnist


def flops_per_step(m: int, b: int, h: int, n_out: int) -> float:
    macs1, macs23 = 784 * h, h * h + h * n_out
    return m * b * (4 * macs1 + 6 * macs23)


def time_it(fn, steps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps


def vectorised_step_fn(m, b, h, n_out, x, y):
    s = mnist.init_stack(m, h, n_out, 0)
    params = s.params()
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=3e-4)

    def step():
        loss = mnist.class_ce_loss(s.forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def loop_step_fn(m, b, h, n_out, x, y):
    nets = [
        torch.nn.Sequential(
            torch.nn.Linear(784, h),
            torch.nn.ReLU(),
            torch.nn.Linear(h, h),
            torch.nn.ReLU(),
            torch.nn.Linear(h, n_out),
        )
        for _ in range(m)
    ]
    opts = [torch.optim.Adam(n.parameters(), lr=3e-4) for n in nets]

    def step():
        for net, opt in zip(nets, opts):
            loss = torch.nn.functional.cross_entropy(net(x)[:, :10], y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return step


def matmul_peak(m, b, h) -> float:
    """GFLOP/s of the trainer's own GEMM shapes, forward and backward, with nothing else."""
    x = torch.randn(b, 784)
    w1 = torch.randn(784, m * h)
    a = torch.randn(m, b, h)
    w2 = torch.randn(m, h, h)
    g1 = torch.randn(b, m * h)

    def mm():
        x @ w1  # layer 1 forward
        x.T @ g1  # layer 1 weight gradient
        torch.bmm(a, w2)  # layer 2 forward
        torch.bmm(a.transpose(1, 2), a)  # weight gradient
        torch.bmm(a, w2.transpose(1, 2))  # input gradient

    sec = time_it(mm, 10)
    flops = 2 * b * 784 * m * h * 2 + 2 * b * h * h * m * 3
    return flops / sec / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m, b, h, n_out = a.models, a.batch, a.hidden, 13
    x = torch.rand(b, 784) * 2 - 1
    y = torch.randint(0, 10, (b,))
    vec = time_it(vectorised_step_fn(m, b, h, n_out, x, y), a.steps)
    loop = time_it(loop_step_fn(m, b, h, n_out, x, y), a.steps)
    peak = matmul_peak(m, b, h)
    achieved = flops_per_step(m, b, h, n_out) / vec / 1e9
    epoch = 60000 / b
    print(f"MNIST MLP 784-{h}-{h}-{n_out}, {m} models, batch {b}, {a.threads} thread(s)")
    print(f"{'':28}{'vectorised':>12}{'loop':>12}{'ratio':>9}")
    print(f"{'seconds per step (M models)':28}{vec:12.4f}{loop:12.4f}{loop / vec:8.2f}x")
    print(f"{'seconds per model-epoch':28}{vec * epoch / m:12.3f}{loop * epoch / m:12.3f}")
    print(f"{'':28}{'achieved':>12}{'matmul peak':>12}{'fraction':>9}")
    print(f"{'GFLOP/s':28}{achieved:12.1f}{peak:12.1f}{achieved / peak:8.0%}")


if __name__ == "__main__":
    main()
