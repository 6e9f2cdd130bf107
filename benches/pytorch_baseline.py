#!/usr/bin/env python3
"""PyTorch's figures for the same benches as `wgrad bench`, on the same CPU cores.

Prints numpy's fp32 matmul at n=1024 (GFLOP/s) and PyTorch's eager AdamW training step at
batch 128 (samples/s) for the MLP 784-64-10 and LeNet-5 (the layers of ModelSpec::lenet5),
each the median over repetitions after a warm-up, as `wgrad bench` reports its own. Inputs
are random: the step's cost does not depend on the pixels. Needs numpy and torch:

    python3 benches/pytorch_baseline.py [--threads 2]

Run it in the same minutes as `wgrad bench` and compare ratios: a shared machine's speed
drifts.
"""
import argparse
import os
import statistics
import time

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--threads", type=int, default=2, help="threads for numpy's BLAS and torch")
ARGS = PARSER.parse_args()
# numpy's BLAS reads its thread count when it loads, so it is set before the import.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def median_seconds(fn, reps, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step_rate(model, batch, reps):
    """Samples per second of zero_grad, forward, cross-entropy, backward and AdamW's step."""
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    return batch / median_seconds(step, reps)


def main():
    torch.set_num_threads(ARGS.threads)

    n = 1024
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    gflops = 2 * n**3 / median_seconds(lambda: a @ b, 30) / 1e9
    print(f"numpy matmul n={n}: {gflops:.1f} GFLOP/s")

    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    print(f"pytorch train mlp batch=128: {train_step_rate(mlp, 128, 300):.0f} samples/s")

    lenet = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )
    print(f"pytorch train lenet5 batch=128: {train_step_rate(lenet, 128, 60):.0f} samples/s")


if __name__ == "__main__":
    main()
