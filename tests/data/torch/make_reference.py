#!/usr/bin/env python3
"""PyTorch reference data for the wgrad optimizer / scheduler / model tests.

What it makes (all written next to this script, in tests/data/torch/):

  init_64.safetensors       initial weights of an MLP 784-64-10
  init_32-16.safetensors    initial weights of an MLP 784-32-16-10
  init_lenet5.safetensors   initial weights of LeNet-5 (see below)
  init_ae32.safetensors     initial weights of an autoencoder 784-32-784
  init_ae128-32.safetensors initial weights of an autoencoder 784-128-32-128-784
  <name>.safetensors        final weights after 16 training steps, one per config
  reference.json            MLP configs: descriptions, per-step losses and lrs
  reference_models.json     LeNet-5 / autoencoder configs, same record format plus
                            "model" ("lenet5" | "autoencoder") and
                            "loss" ("cross_entropy" | "mse")

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

Models in reference_models.json (same data, batches, step order, seed and
optimizer paths; Adam/AdamW also fused=False):

  lenet5       conv1 = Conv2d(1, 6, 5, padding=2), conv2 = Conv2d(6, 16, 5),
               fc1 = Linear(400, 120), fc2 = Linear(120, 84), fc3 = Linear(84, 10);
               x [n,784] viewed as [n,1,28,28] -> conv1 -> relu -> max_pool2d(2)
               -> conv2 -> relu -> max_pool2d(2) -> torch.flatten(x, 1) ((C,H,W)
               order, 400) -> fc1 -> relu -> fc2 -> relu -> fc3;
               loss CrossEntropyLoss (mean).
               Tensors conv1.weight [6,1,5,5], conv1.bias [6], conv2.weight
               [16,6,5,5], conv2.bias [16], fc1.weight [120,400], ..., fc3.bias [10].
               "hidden" is [120, 84] (the widths of fc1, fc2; informational only).
  autoencoder  the MLP above with 784 outputs, 784-h1-...-hN-784, relu between
               layers and none on the output; loss nn.MSELoss() (mean over all
               64*784 elements) against the input pixels x itself (labels unused).
               "hidden" is the full list of hidden widths, e.g. [128, 32, 128].

Inits are again torch.manual_seed(0) immediately followed by construction
(PyTorch's default Conv2d / Linear init).  lenet5_sgd reuses init_lenet5.

--check-f64 (prints only, writes nothing) reruns every model config in
float64 from the same init and the same float32 pixels cast to float64, and
prints max |float32 final - float64 final|, and for every ReLU the minimum
|pre-activation| seen in float64 plus how often the float32 and float64 runs
disagree on its sign or on a max-pool argmax.

Run:
    /tmp/tv/bin/python tests/data/torch/make_reference.py [--mnist DIR] [--check-f64]
(DIR defaults to /work/shared/data/mnist).  Generated with torch 2.9.1 (CPU,
one thread, deterministic algorithms on); the version actually used is stored
in reference.json / reference_models.json as "torch_version".
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
import torch.nn.functional as F
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
    """784 -> hidden... -> n_out; relu between layers.  n_out=784 is the autoencoder."""

    def __init__(self, hidden, n_out=10):
        super().__init__()
        dims = [784] + list(hidden) + [n_out]
        self.n_layers = len(dims) - 1
        for i in range(self.n_layers):
            setattr(self, f"fc{i + 1}", nn.Linear(dims[i], dims[i + 1]))

    def forward(self, x):
        for i in range(self.n_layers):
            x = getattr(self, f"fc{i + 1}")(x)
            if i + 1 < self.n_layers:
                x = torch.relu(x)
        return x


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = x.reshape(-1, 1, 28, 28)
        x = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


LENET5_HIDDEN = [120, 84]


def tag_of(hidden):
    return "-".join(str(h) for h in hidden)


def build_model(cfg):
    """The module for a config record (MLP configs have no "model" key)."""
    kind = cfg.get("model", "mlp")
    if kind == "mlp":
        return MLP(cfg["hidden"])
    if kind == "lenet5":
        return LeNet5()
    if kind == "autoencoder":
        return MLP(cfg["hidden"], n_out=784)
    raise ValueError(kind)


def relu_inputs(cfg):
    """Names of the modules whose outputs go into a relu (and, for LeNet-5's
    convolutions, then into a 2x2 max-pool)."""
    kind = cfg.get("model", "mlp")
    if kind == "lenet5":
        return ["conv1", "conv2", "fc1", "fc2"], ["conv1", "conv2"]
    n = len(cfg["hidden"])
    return [f"fc{i + 1}" for i in range(n)], []


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

# reference_models.json
MODEL_CONFIGS = [
    dict(name="lenet5_adamw", model="lenet5", optimizer="adamw", lr=1e-3,
         weight_decay=1e-2),
    dict(name="autoencoder_adam", model="autoencoder", hidden=[32],
         optimizer="adam", lr=1e-3),
    dict(name="autoencoder_deep_adam", model="autoencoder", hidden=[128, 32, 128],
         optimizer="adam", lr=1e-3),
    dict(name="lenet5_sgd", model="lenet5", optimizer="sgd", lr=0.05, momentum=0.9),
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


def full_model_config(c):
    """full_config plus "model" and "loss" (placed after "name")."""
    kind = c["model"]
    base = dict(c)
    del base["model"]
    if kind == "lenet5":
        base["hidden"] = LENET5_HIDDEN
    f = full_config(base)
    d = dict(name=f.pop("name"), model=kind,
             loss="cross_entropy" if kind == "lenet5" else "mse")
    d.update(f)
    if kind == "lenet5":
        d["init"] = "init_lenet5.safetensors"
    else:
        h = d["hidden"]
        d["init"] = f"init_ae{tag_of(h[:(len(h) + 1) // 2])}.safetensors"
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


# ---------------------------------------------------------------- training

def state_of(model):
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


def train(cfg, model, X, Y):
    """16 steps as described at the top; returns (losses, lrs)."""
    loss_fn = nn.MSELoss() if cfg.get("loss") == "mse" else nn.CrossEntropyLoss()
    optimizer = make_optimizer(cfg, model.parameters())
    scheduler = make_scheduler(cfg, optimizer)
    losses, lrs = [], []
    for k in range(1, STEPS + 1):
        x = X[(k - 1) * BATCH_SIZE: k * BATCH_SIZE]
        y = Y[(k - 1) * BATCH_SIZE: k * BATCH_SIZE]
        target = x if cfg.get("loss") == "mse" else y
        lrs.append(float(optimizer.param_groups[0]["lr"]))
        loss = loss_fn(model(x), target)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return losses, lrs


def run_configs(configs, X, Y):
    """Train every config from its init file, save its final weights; returns
    (records for the json, summary rows)."""
    out_configs, summary = [], []
    for cfg in configs:
        init = load_file(os.path.join(OUT_DIR, cfg["init"]))
        model = build_model(cfg)
        model.load_state_dict(init)
        losses, lrs = train(cfg, model, X, Y)
        final = state_of(model)
        save(final, cfg["weights"])
        deltas = {k: (final[k] - init[k]).abs().max().item() for k in final}
        summary.append((cfg["name"], losses, lrs, deltas))
        out = dict(cfg)
        out["losses"] = losses
        out["lrs"] = lrs
        out_configs.append(out)
    return out_configs, summary


# ---------------------------------------------------------------- float64 check

class PreActRecorder:
    """Keeps a copy of the output of each named module (= a relu's input) at
    every forward call, i.e. once per training step."""

    def __init__(self, model, names):
        self.seen = {n: [] for n in names}
        self.handles = [getattr(model, n).register_forward_hook(self.hook(n))
                        for n in names]

    def hook(self, name):
        def f(module, inputs, output):
            self.seen[name].append(output.detach().clone())
        return f

    def remove(self):
        for h in self.handles:
            h.remove()


def pool_windows(t):
    """[n,c,H,W] -> [n,c,H/2,W/2,4], each 2x2 window in max_pool2d's scan order."""
    n, c, h, w = t.shape
    return (t.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5)
            .reshape(n, c, h // 2, w // 2, 4))


def recorded_run(cfg, X, Y, dtype):
    init = load_file(os.path.join(OUT_DIR, cfg["init"]))
    model = build_model(cfg).to(dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in init.items()})
    relu_names, _ = relu_inputs(cfg)
    rec = PreActRecorder(model, relu_names)
    losses, _ = train(cfg, model, X.to(dtype), Y)
    rec.remove()
    return state_of(model), losses, rec.seen


def check_f64(configs, X, Y):
    print()
    print("float64 rerun (same init, same float32 pixels cast to float64)")
    for cfg in configs:
        saved = load_file(os.path.join(OUT_DIR, cfg["weights"]))
        f32, losses32, pre32 = recorded_run(cfg, X, Y, torch.float32)
        f64, losses64, pre64 = recorded_run(cfg, X, Y, torch.float64)
        repro = all(torch.equal(f32[k], saved[k]) for k in saved)
        wdiff = {k: (f32[k].double() - f64[k]).abs().max().item() for k in f32}
        wrel = {k: wdiff[k] / f64[k].abs().max().item() for k in f32}
        kmax = max(wdiff, key=wdiff.get)
        ldiff = max(abs(a - b) for a, b in zip(losses32, losses64))
        print(f"{cfg['name']}: float32 rerun bit-identical to saved weights: "
              f"{'yes' if repro else 'NO'}")
        print(f"  max |f32 final - f64 final| = {wdiff[kmax]:.3e} ({kmax}; "
              f"{wrel[kmax]:.2e} of that tensor's max |w|), "
              f"max |f32 loss - f64 loss| over steps = {ldiff:.3e}")
        print("  " + "  ".join(f"{k}={v:.2e}" for k, v in wdiff.items()))
        relu_names, pool_names = relu_inputs(cfg)
        overall = math.inf
        for name in relu_names:
            a32 = torch.stack([t.double() for t in pre32[name]])
            a64 = torch.stack(pre64[name])
            absd = (a32 - a64).abs()
            amin = a64.abs().min().item()
            overall = min(overall, amin)
            nz = (a64.abs() > 0)
            minnz = a64.abs()[nz].min().item() if nz.any() else math.nan
            zeros = int((a64 == 0).sum())
            flips = int(((a32 > 0) != (a64 > 0)).sum())
            risk = int((a64.abs() <= absd).sum())
            per_step_min = [pre64[name][s].abs().min().item() for s in range(STEPS)]
            print(f"  relu after {name:5s}: min |pre| f64 = {amin:.3e} "
                  f"(nonzero min {minnz:.3e}, exact zeros {zeros}, "
                  f"step of min {per_step_min.index(min(per_step_min)) + 1}), "
                  f"max |pre32 - pre64| = {absd.max().item():.3e}, "
                  f"|pre64| <= |pre32 - pre64|: {risk}, sign flips f32 vs f64: {flips} "
                  f"of {a64.numel()}")
            if name in pool_names:
                w32 = pool_windows(torch.relu(torch.cat([t.double() for t in pre32[name]])))
                w64 = pool_windows(torch.relu(torch.cat(pre64[name])))
                arg_flips = int((w32.argmax(-1) != w64.argmax(-1)).sum())
                top2 = w64.topk(2, dim=-1).values
                gap = top2[..., 0] - top2[..., 1]
                pos = top2[..., 0] > 0
                ties = int(((gap == 0) & pos).sum())
                g = gap[(gap > 0) & pos]
                gmin = g.min().item() if g.numel() else math.nan
                print(f"    max-pool after {name}: argmax differs f32 vs f64 in {arg_flips} "
                      f"of {w64[..., 0].numel()} windows; f64 windows with a positive "
                      f"exact tie for max: {ties}; smallest positive top-2 gap {gmin:.3e}")
        if cfg["model"] == "lenet5":
            print(f"  min |pre-activation| at any relu, any step, f64: {overall:.3e}")


# ---------------------------------------------------------------- main

def save(state, filename):
    path = os.path.join(OUT_DIR, filename)
    save_file(state, path)
    os.chmod(path, 0o644)  # safetensors creates files 0600


def write_json(filename, configs, images, labels):
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
        "configs": configs,
    }
    with open(os.path.join(OUT_DIR, filename), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")


def print_summary(summary):
    print(f"{'config':22s} {'first':>10s} {'last':>10s} {'min':>10s} falls  lr[0] .. lr[15]")
    for name, losses, lrs, _ in summary:
        falls = losses[-1] < losses[0]
        print(f"{name:22s} {losses[0]:10.6f} {losses[-1]:10.6f} {min(losses):10.6f} "
              f"{'yes' if falls else 'NO ':5s} {lrs[0]:.6g} .. {lrs[-1]:.6g}")


def print_deltas(summary, per_line):
    print("max |final - init| per tensor")
    for name, _, _, deltas in summary:
        items = [f"{k}={v:.3e}" for k, v in deltas.items()]
        for i in range(0, len(items), per_line):
            head = name if i == 0 else ""
            print(f"{head:22s} " + "  ".join(items[i:i + per_line]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mnist", default="/work/shared/data/mnist")
    ap.add_argument("--check-f64", action="store_true",
                    help="rerun the model configs in float64 and print the differences")
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

    # MLPs: reference.json
    configs = [full_config(c) for c in CONFIGS]
    for hidden in sorted({tuple(c["hidden"]) for c in configs}):
        torch.manual_seed(SEED)
        m = MLP(hidden)
        save(state_of(m), f"init_{tag_of(hidden)}.safetensors")
    out_configs, summary = run_configs(configs, X, Y)
    write_json("reference.json", out_configs, images, labels)

    # LeNet-5 and autoencoders: reference_models.json
    model_configs = [full_model_config(c) for c in MODEL_CONFIGS]
    inits = {}
    for cfg in model_configs:
        inits.setdefault(cfg["init"], cfg)
    for filename, cfg in inits.items():
        torch.manual_seed(SEED)
        save(state_of(build_model(cfg)), filename)
    out_models, summary_models = run_configs(model_configs, X, Y)
    write_json("reference_models.json", out_models, images, labels)

    print(f"torch {torch.__version__}")
    print_summary(summary)
    print()
    print_summary(summary_models)
    print()
    print_deltas(summary, per_line=8)
    print()
    print_deltas(summary_models, per_line=4)

    if args.check_f64:
        check_f64(model_configs, X, Y)


if __name__ == "__main__":
    main()
