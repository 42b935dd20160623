"""Training speed of the paper recipe's step: the suite's fast paths against a peer-style eager fp32 step.

The peer is what a plain PyTorch implementation of RefineNet runs: the same model and weights, NCHW,
fp32, no fast path (on CUDA with PyTorch's default TF32 convolutions, like ours). Every setting gets
its own copy of one model, and the steps of the settings alternate within one process (the order
rotating), so clock changes and other load hit them alike; `speed_vs_peer` is the peer's median step
time over the setting's (>1: faster than the peer).

A step is the paper recipe's (refinenet/recipe.py): one crop, batch 1, frozen batch norm, dropout,
the crop rescaled by the recipe's input scale (1.2), cross-entropy of the 1/4-resolution scores against
labels shrunk to them, without void pixels (refinenet/loss.py), SGD with momentum 0.9, weight decay
5e-4 and the two learning rates (refinenet/train.py's build_optimizer).

Beside it, the FLOP/s of a large fp32 matmul on the same device and threads (the machine's practical
limit) and each setting's achieved FLOP/s (FlopCounterMode's convolution / matmul count of a training
step) as a fraction of it.

    python -m benchmarks.efficiency.speed                 # this machine: the default step vs the peer
    python -m benchmarks.efficiency.speed --device cuda --models RefineNet-50 RefineNet-101 RefineNet-152 --size 400 \\
        --settings default channels_last+bf16 peer          # what benchmarks/efficiency/gpu_check.sh runs

Writes <out>/training_speed.csv (one row per model and setting, device recorded) and prints a table.
`nox -s bench` runs the same comparison for RefineNet-101 (benchmarks/efficiency/benchmark.py).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.efficiency.models import MODELS, NUM_CLASSES, build_model
from benchmarks.provenance import REPO, add_allow_dirty_option, code_version_or_exit, device_description
from refinenet.atomic import write_text_atomic
from refinenet.fastpath import (
    EAGER_FP32,
    FastPath,
    apply_fast_path,
    autocast,
    choose_fast_path,
    precision_name,
    prepare_input,
)
from refinenet.loss import segmentation_loss, training_scores
from refinenet.recipe import get_recipe
from refinenet.train import build_optimizer

PEER = "peer"
# how efficiency.csv names these settings (its "setting" column)
BENCH_SETTINGS = {"default": "suite-default", PEER: "peer-eager-fp32"}
# setting -> its fast path; "default" is what `refinenet train` would pick on this device.
SETTINGS = {
    "default": None,
    "channels_last+fp32": FastPath(channels_last=True),
    "channels_last+bf16": FastPath(channels_last=True, amp_dtype=torch.bfloat16),
    "nchw+bf16": FastPath(amp_dtype=torch.bfloat16),
    PEER: EAGER_FP32,
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_gflops(device: torch.device, n: int | None = None, repeats: int = 5) -> tuple[float, int]:
    """(GFLOP/s of an n x n x n fp32 matmul, n): median of `repeats` after a warm-up."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    times = []
    for i in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        if i:
            times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9, n


def train_step_gflops(name: str, size: int, batch: int = 1) -> float:
    """FlopCounterMode's convolution / matmul GFLOPs of one training step (forward + backward), counted
    on the meta device (shapes only)."""
    with torch.device("meta"):
        model = build_model(name).train()
        x = torch.empty(batch, 3, size, size)
    with FlopCounterMode(display=False) as flops:
        model(x, upsample=False).float().sum().backward()
    return flops.get_total_flops() / 1e9


def resolve_settings(names: list[str], device: torch.device) -> dict[str, tuple[FastPath, str]]:
    """Each setting's fast path and label; the peer always comes along (every ratio needs it)."""
    resolved = {}
    for name in dict.fromkeys([*names, PEER]):
        if name == "default":  # the paper recipe trains with frozen batch norm
            resolved[name] = choose_fast_path(device, step="train", batchnorm_trains=False)
        else:
            fast = SETTINGS[name]
            resolved[name] = (fast, f"{fast.name} ({'peer-style eager' if name == PEER else 'fixed'})")
    return resolved


def time_training_steps(name: str, size: int, settings: dict[str, tuple[FastPath, str]], device: torch.device,
                        warmup: int = 1, repeats: int = 5, batch: int = 1) -> dict[str, list[float]]:
    """Seconds per paper-recipe step of model `name` under each setting, steps alternating."""
    torch.manual_seed(0)
    base = build_model(name)
    recipe = get_recipe("paper")
    hyper = SimpleNamespace(lr=recipe.lr, backbone_lr_mult=recipe.backbone_lr_mult, momentum=recipe.momentum,
                            weight_decay=recipe.weight_decay)
    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, NUM_CLASSES, (batch, size, size), device=device)
    labels[:, :, : size // 8] = 255  # some void pixels, as in real label maps
    runs = {}
    for setting, (fast, _) in settings.items():
        model = apply_fast_path(copy.deepcopy(base).to(device), fast).train()
        runs[setting] = (model, build_optimizer(model, hyper), fast, prepare_input(images, fast))
    del base

    def step(setting: str) -> float:
        model, optimizer, fast, x = runs[setting]
        _sync(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast(fast, device):
            scores = training_scores(model, x, recipe.input_scale, recipe.loss_at)
        segmentation_loss(scores, labels).backward()
        optimizer.step()
        _sync(device)
        return time.perf_counter() - start

    order = list(settings)
    for _ in range(max(1, warmup)):
        for setting in order:
            step(setting)
    times = {setting: [] for setting in order}
    for i in range(repeats):
        for setting in order[i % len(order):] + order[: i % len(order)]:
            times[setting].append(step(setting))
    return times


def compare(name: str, size: int, setting_names: list[str], device: torch.device, warmup: int, repeats: int,
            gemm: float | None = None, batch: int = 1) -> list[dict]:
    """One row per setting: step time, steps/s, speed against the peer, FLOP/s and its fraction of `gemm`."""
    settings = resolve_settings(setting_names, device)
    times = time_training_steps(name, size, settings, device, warmup, repeats, batch)
    gflops = train_step_gflops(name, size, batch)
    peer = statistics.median(times[PEER])
    rows = []
    for setting, (fast, label) in settings.items():
        seconds = statistics.median(times[setting])
        rows.append({
            "model": name, "input_size": size, "batch": batch, "setting": setting, "fast_path": label,
            "precision": precision_name(fast.amp_dtype, device), "train_step_time_s": seconds,
            "train_steps_per_s": 1 / seconds, "speed_vs_peer": peer / seconds, "repeats": repeats,
            "gflops_train_step": gflops, "achieved_gflops_per_s": gflops / seconds,
            "fp32_gemm_gflops_per_s": gemm,
            "fraction_of_fp32_gemm": gflops / seconds / gemm if gemm else float("nan"),
        })
    return rows


def bench_rows(job: dict) -> list[dict]:
    """What `nox -s bench` records (benchmarks/efficiency/benchmark.py, a worker job): the fp32 GEMM's FLOP/s
    (`kind` "gemm"), or the paper-recipe step under each setting against the peer (`kind` "speed")."""
    device = torch.device(job["device"])
    if job["kind"] == "gemm":
        gflops, n = gemm_gflops(device, job.get("n"))
        return [{"measurement": "fp32_gemm_gflops_per_s", "value": gflops, "unit": "GFLOP/s",
                 "method": f"median of 5 fp32 {n}x{n}x{n} matmuls, {torch.get_num_threads()} threads"}]
    settings = resolve_settings(job["settings"], device)
    times = time_training_steps(job["model"], job["size"], settings, device, job["warmup"], job["repeats"],
                                job["batch"])
    peer = statistics.median(times[PEER])
    rows = []
    for setting, (fast, label) in settings.items():
        seconds = statistics.median(times[setting])
        common = {"setting": BENCH_SETTINGS.get(setting, setting), "dtype": precision_name(fast.amp_dtype, device),
                  "method": f"paper-recipe step, settings alternating in one process; {label}"}
        rows += [{**common, "measurement": "train_step_time", "value": seconds, "unit": "s"},
                 {**common, "measurement": "speed_vs_peer", "value": peer / seconds, "unit": "x"}]
    return rows


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.efficiency.speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", nargs="+", choices=[m for m, (family, _) in MODELS.items() if family == "refinenet"])
    p.add_argument("--size", type=int, help="crop size (paper recipe: 400; default 400 on a GPU, 256 on a CPU)")
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), help="default: default peer (the peer always runs)")
    p.add_argument("--warmup", type=int, help="untimed steps per setting first (default 2; quick 1)")
    p.add_argument("--repeats", type=int, help="timed steps per setting (default 10 on a GPU, 3 on a CPU)")
    p.add_argument("--gemm-size", type=int, help="n of the n x n x n fp32 matmul (default 8192 GPU, 2048 CPU)")
    p.add_argument("--out", type=Path, default=REPO / "results")
    p.add_argument("--quick", action="store_true", help="RefineNet-50 at 64x64, 1 repeat: a smoke test (seconds)")
    add_allow_dirty_option(p)
    args = p.parse_args(argv)
    gpu = args.device.startswith("cuda")
    if args.quick:
        defaults = dict(models=["RefineNet-50"], size=64, repeats=1, warmup=1, gemm_size=512)
    else:
        defaults = dict(models=["RefineNet-101"], size=400 if gpu else 256, repeats=10 if gpu else 3, warmup=2)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.settings = args.settings or ["default", PEER]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    version = code_version_or_exit(args.out, args.allow_dirty)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    load = os.getloadavg()
    gemm, n = gemm_gflops(device, args.gemm_size)
    print(f"fp32 GEMM {n}x{n}x{n}: {gemm:.0f} GFLOP/s on {device_description(device)}", flush=True)
    common = {"device": device_description(device), "device_type": device.type, "threads": torch.get_num_threads(),
              "gemm_n": n, "torch": torch.__version__, "code_version": version,
              "date": datetime.datetime.now().isoformat(timespec="seconds"), "load_average_1min": load[0]}
    rows = []
    for name in args.models:
        for row in compare(name, args.size, args.settings, device, args.warmup, args.repeats, gemm):
            rows.append({**row, **common})
            print(f"{name} @ {args.size}: {row['setting']:<20} {row['train_steps_per_s']:6.2f} steps/s "
                  f"{row['speed_vs_peer']:5.2f}x peer  {row['fraction_of_fp32_gemm']:.2f} of fp32 GEMM  "
                  f"[{row['fast_path']}; {row['precision']}]", flush=True)
    import pandas as pd

    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "training_speed.csv", pd.DataFrame(rows).to_csv(index=False))
    print(f"wrote {args.out / 'training_speed.csv'} (load average at the start {load[0]:.1f}, "
          f"{os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
