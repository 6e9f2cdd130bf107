#!/usr/bin/env python3
"""PyTorch reference data for the wgrad optimizer / scheduler tests.

What it makes (all written next to this script, in tests/data/torch/):

  init_64.safetensors       initial weights of an MLP 784-64-10
  init_32-16.safetensors    initial weights of an MLP 784-32-16-10
  <name>.safetensors        final weights after 16 training steps, one per config
  reference.json            config descriptions, per-step losses and lrs

Both inits are made with torch.manual_seed(0) immediately followed by the
module construction (PyTorch's default nn.Linear init: kaiming_uniform(a=sqrt(5))
for weights, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for biases).  Tensor names are
fc1.weight [h1,784], fc1.bias [h1], ..., fcN.weight [10,h_last], fcN.bias [10],
all float32, weights in PyTorch's [out, in] layout.

Data: the first 1024 images/labels of the MNIST *training* set, read from the
raw gz IDX files with gzip+numpy.  Pixels are float32 byte/255, nothing else;
each image is flattened row-major to 784 values.

Training (every config): load the init, build the optimizer with
foreach=False (single-tensor path), no shuffling; step k (k = 1..16) uses
images (k-1)*64 .. k*64-1 in file order:

    lrs[k-1]    = optimizer.param_groups[0]['lr']   # read BEFORE optimizer.step()
    out         = model(x)
    loss        = nn.CrossEntropyLoss()(out, y)     # mean over the 64 samples
    losses[k-1] = loss.item()                       # forward loss, before the update
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    scheduler.step()                                # only when there is a scheduler

LambdaLR / StepLR count from 0: step k uses factor f(k-1).

Run:
    /tmp/tv/bin/python tests/data/torch/make_reference.py [--mnist DIR]
(DIR defaults to /work/shared/data/mnist).  Generated with torch 2.9.1 (CPU,
one thread, deterministic algorithms on); the version actually used is stored
in reference.json as "torch_version".
"""

import argparse
import gzip
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

SEED = 0
TRAIN_LIMIT = 1024
BATCH_SIZE = 64
STEPS = 16
OUT_DIR = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- MNIST IDX

def read_idx_images(path, limit):
    with gzip.open(path, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 0x00000803:
            raise ValueError(f"{path}: bad image magic {magic:#010x}")
        if limit > n:
            raise ValueError(f"{path}: only {n} images, want {limit}")
        raw = f.read(limit * rows * cols)
    if len(raw) != limit * rows * cols:
        raise ValueError(f"{path}: truncated")
    a = np.frombuffer(raw, dtype=np.uint8).reshape(limit, rows * cols)
    return (a.astype(np.float32) / np.float32(255.0)), rows, cols


def read_idx_labels(path, limit):
    with gzip.open(path, "rb") as f:
        magic, n = struct.unpack(">II", f.read(8))
        if magic != 0x00000801:
            raise ValueError(f"{path}: bad label magic {magic:#010x}")
        if limit > n:
            raise ValueError(f"{path}: only {n} labels, want {limit}")
        raw = f.read(limit)
    if len(raw) != limit:
        raise ValueError(f"{path}: truncated")
    return np.frombuffer(raw, dtype=np.uint8).astype(np.int64)


# ---------------------------------------------------------------- model

class MLP(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        dims = [784] + list(hidden) + [10]
        self.n_layers = len(dims) - 1
        for i in range(self.n_layers):
            setattr(self, f"fc{i + 1}", nn.Linear(dims[i], dims[i + 1]))

    def forward(self, x):
        for i in range(self.n_layers):
            x = getattr(self, f"fc{i + 1}")(x)
            if i + 1 < self.n_layers:
                x = torch.relu(x)
        return x


def tag_of(hidden):
    return "-".join(str(h) for h in hidden)


# ---------------------------------------------------------------- configs

SGD_DEFAULTS = dict(momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0)
ADAGRAD_DEFAULTS = dict(eps=1e-10, lr_decay=0.0, initial_accumulator_value=0.0,
                        weight_decay=0.0)
ADAM_DEFAULTS = dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0)
ADAMW_DEFAULTS = dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2)

CONFIGS = [
    dict(name="sgd", optimizer="sgd", lr=0.1),
    dict(name="sgd_wd", optimizer="sgd", lr=0.1, weight_decay=1e-3),
    dict(name="momentum", optimizer="sgd", lr=0.05, momentum=0.9),
    dict(name="nesterov", optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True),
    dict(name="adagrad", optimizer="adagrad", lr=0.01),
    dict(name="adagrad_wd", optimizer="adagrad", lr=0.05, weight_decay=1e-2),
    dict(name="adam", optimizer="adam", lr=1e-3),
    dict(name="adam_l2", optimizer="adam", lr=1e-3, weight_decay=1e-2),
    dict(name="adamw", optimizer="adamw", lr=1e-3, weight_decay=1e-2),
    dict(name="adamw_betas", optimizer="adamw", lr=2e-3, beta1=0.8, beta2=0.99,
         eps=1e-6, weight_decay=0.1),
    dict(name="adamw_cosine", optimizer="adamw", lr=1e-3, weight_decay=1e-2,
         schedule="cosine"),
    dict(name="sgd_step", optimizer="sgd", lr=0.1, momentum=0.9,
         schedule="step", step_size=5, gamma=0.5),
    dict(name="adam_invsqrt", optimizer="adam", lr=3e-3, schedule="inv-sqrt"),
    dict(name="adam_deep", optimizer="adam", lr=1e-3, hidden=[32, 16]),
]


def full_config(c):
    """Every field present; PyTorch defaults where unset, 0 where not applicable."""
    opt = c["optimizer"]
    d = dict(
        name=c["name"],
        hidden=list(c.get("hidden", [64])),
        optimizer=opt,
        lr=c["lr"],
        momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
        beta1=0.0, beta2=0.0, eps=0.0,
        lr_decay=0.0, initial_accumulator_value=0.0,
        schedule=c.get("schedule", "constant"),
        step_size=c.get("step_size", 0),
        gamma=c.get("gamma", 0.0),
        total_steps=STEPS,
    )
    d.update({"sgd": SGD_DEFAULTS, "adagrad": ADAGRAD_DEFAULTS,
              "adam": ADAM_DEFAULTS, "adamw": ADAMW_DEFAULTS}[opt])
    for k, v in c.items():
        if k in d:
            d[k] = v
    d["init"] = f"init_{tag_of(d['hidden'])}.safetensors"
    d["weights"] = f"{d['name']}.safetensors"
    return d


def make_optimizer(cfg, params):
    opt = cfg["optimizer"]
    if opt == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"],
                               dampening=cfg["dampening"], nesterov=cfg["nesterov"],
                               weight_decay=cfg["weight_decay"], foreach=False)
    if opt == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg["lr"], lr_decay=cfg["lr_decay"],
                                   weight_decay=cfg["weight_decay"],
                                   initial_accumulator_value=cfg["initial_accumulator_value"],
                                   eps=cfg["eps"], foreach=False)
    if opt in ("adam", "adamw"):
        cls = torch.optim.Adam if opt == "adam" else torch.optim.AdamW
        return cls(params, lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]),
                   eps=cfg["eps"], weight_decay=cfg["weight_decay"],
                   amsgrad=False, foreach=False, fused=False)
    raise ValueError(opt)


def make_scheduler(cfg, optimizer):
    s = cfg["schedule"]
    if s == "constant":
        return None
    if s == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg["step_size"],
                                               gamma=cfg["gamma"])
    if s == "cosine":
        K = cfg["total_steps"]
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: (1 + math.cos(math.pi * k / K)) / 2)
    if s == "inv-sqrt":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: 1 / math.sqrt(k + 1))
    raise ValueError(s)


# ---------------------------------------------------------------- main

def save(state, filename):
    path = os.path.join(OUT_DIR, filename)
    save_file(state, path)
    os.chmod(path, 0o644)  # safetensors creates files 0600


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mnist", default="/work/shared/data/mnist")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    images, rows, cols = read_idx_images(
        os.path.join(args.mnist, "train-images-idx3-ubyte.gz"), TRAIN_LIMIT)
    labels = read_idx_labels(
        os.path.join(args.mnist, "train-labels-idx1-ubyte.gz"), TRAIN_LIMIT)
    assert rows * cols == 784
    X = torch.from_numpy(images.copy())
    Y = torch.from_numpy(labels.copy())

    configs = [full_config(c) for c in CONFIGS]

    # inits
    for hidden in sorted({tuple(c["hidden"]) for c in configs}):
        torch.manual_seed(SEED)
        m = MLP(hidden)
        sd = {k: v.detach().contiguous() for k, v in m.state_dict().items()}
        save(sd, f"init_{tag_of(hidden)}.safetensors")

    loss_fn = nn.CrossEntropyLoss()
    out_configs = []
    summary = []
    for cfg in configs:
        init = load_file(os.path.join(OUT_DIR, cfg["init"]))
        model = MLP(cfg["hidden"])
        model.load_state_dict(init)
        optimizer = make_optimizer(cfg, model.parameters())
        scheduler = make_scheduler(cfg, optimizer)
        losses, lrs = [], []
        for k in range(1, STEPS + 1):
            x = X[(k - 1) * BATCH_SIZE: k * BATCH_SIZE]
            y = Y[(k - 1) * BATCH_SIZE: k * BATCH_SIZE]
            lrs.append(float(optimizer.param_groups[0]["lr"]))
            loss = loss_fn(model(x), y)
            losses.append(loss.item())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        final = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save(final, cfg["weights"])
        deltas = {k: (final[k] - init[k]).abs().max().item() for k in final}
        summary.append((cfg["name"], losses, lrs, deltas))
        out = dict(cfg)
        out["losses"] = losses
        out["lrs"] = lrs
        out_configs.append(out)

    ref = {
        "torch_version": torch.__version__,
        "seed": SEED,
        "train_limit": TRAIN_LIMIT,
        "batch_size": BATCH_SIZE,
        "steps": STEPS,
        "data": {
            "source": "MNIST train-images-idx3-ubyte.gz / train-labels-idx1-ubyte.gz",
            "pixel_scale": "byte/255 float32",
            "pixel_sum": float(images.astype(np.float64).sum()),
            "label_sum": int(labels.sum()),
        },
        "configs": out_configs,
    }
    with open(os.path.join(OUT_DIR, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")

    print(f"torch {torch.__version__}")
    print(f"{'config':14s} {'first':>10s} {'last':>10s} {'min':>10s} falls  lr[0] .. lr[15]")
    for name, losses, lrs, _ in summary:
        falls = losses[-1] < losses[0]
        print(f"{name:14s} {losses[0]:10.6f} {losses[-1]:10.6f} {min(losses):10.6f} "
              f"{'yes' if falls else 'NO ':5s} {lrs[0]:.6g} .. {lrs[-1]:.6g}")
    print()
    print("max |final - init| per tensor")
    for name, _, _, deltas in summary:
        print(f"{name:14s} " + "  ".join(f"{k}={v:.3e}" for k, v in deltas.items()))


if __name__ == "__main__":
    main()
