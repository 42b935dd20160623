"""The paper's cost claim against dilated networks, measured, and RefineNet's fast paths.

Sec. 1-2 and Fig. 2 of the paper argue that dilated ResNets (Fig. 2b, DeepLab) are "computationally
expensive" and "require huge GPU memory resources, especially in the training stage", while
RefineNet (Fig. 2c) produces 1/4-resolution predictions from down-sampled features. This script
measures, per model and input size:

* parameters, GFLOPs (torch.utils.flop_counter.FlopCounterMode: convolutions and matmuls) of a
  forward pass and of a training step, output (score map) resolution;
* training activation memory, counted exactly with saved-tensor hooks (benchmarks/efficiency/memory.py), over
  the whole sweep on the meta device (shapes only, nothing computed);
* peak memory of a training step and of inference: CUDA max_memory_allocated on a GPU, peak RSS of
  a fresh worker process on CPU (every timed measurement runs in its own process);
* time per inference / training step (median of repeats after warm-up) and images/s;
* fast paths for RefineNet-101 (eager fp32 vs channels_last vs bf16 autocast vs torch.compile),
  torch.inference_mode vs no_grad, the confusion matrix on the device;
* the paper recipe's training step under the suite's default fast path against a peer-style eager
  fp32 step of the same model and weights, alternating in one process (benchmarks/efficiency/speed.py);
* the FLOP/s of a large fp32 matmul on the device, and every timed step's achieved FLOP/s as a
  fraction of it: how close each setting runs to the machine's limit;
* memory-lean training (RefineNetConfig.memory_lean) against the default;
* single-scale vs multi-scale (PAPER_SCALES) vs multi-scale + dense CRF on a VOC-sized image.

Writes <out>/efficiency.csv (tidy), efficiency.png and efficiency.md. `nox -s bench -- --help`.
This file holds the command and the plan; the models compared are in models.py, the measurements in
measure.py, the figure and summary in report.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.efficiency.measure import analyse, job_fast_path, run_job, spawn
from benchmarks.efficiency.models import DILATED, FAST_PATHS, HEADLINE, MODELS, QUICK_MODELS, VOC_IMAGE
from benchmarks.efficiency.report import render
from benchmarks.provenance import REPO, add_allow_dirty_option, code_version_or_exit, device_description
from refinenet.atomic import write_text_atomic

# ----------------------------------------------------------------------------------------------
# The command and the plan.


def available_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable"):
            return int(line.split()[1]) * 1024
    return 8 << 30


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.efficiency", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=REPO / "results")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 3 models, 1 repeat: a smoke test (seconds)")
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), help="default: all (quick: 3)")
    p.add_argument("--sizes", type=int, nargs="+", help="sizes counted on the meta device (FLOPs, memory)")
    p.add_argument("--timed-sizes", type=int, nargs="+", help="sizes timed for every model")
    p.add_argument("--size", type=int, help="the headline size (default 512)")
    p.add_argument("--fast-path-size", type=int, help="size of the fast-path comparison (CPU 256, GPU 512)")
    p.add_argument("--warmup", type=int)
    p.add_argument("--repeats", type=int)
    p.add_argument("--batch", type=int, default=1, help="images per step (released recipe: 1)")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--budget-min", type=float, default=None, help="skip remaining timed jobs after this many minutes")
    p.add_argument("--from-csv", type=Path, help="only redraw the figure and summary from this efficiency.csv")
    p.add_argument("--in-process", action="store_true", help="run timed jobs in this process (no per-job peak RSS)")
    add_allow_dirty_option(p)
    args = p.parse_args(argv)
    gpu = args.device.startswith("cuda")
    if args.quick:
        defaults = dict(models=list(QUICK_MODELS), sizes=[64, 96], timed_sizes=[64], size=96, fast_path_size=64,
                        warmup=0, repeats=1, budget_min=5.0, no_compile=True)
    elif gpu:
        defaults = dict(models=list(MODELS), sizes=[256, 384, 512, 768, 1024], timed_sizes=[512, 768, 1024],
                        size=512, fast_path_size=512, warmup=3, repeats=10, budget_min=60.0)
    else:  # the CPU run: about 20 minutes on 2 cores
        defaults = dict(models=list(MODELS), sizes=[256, 384, 512, 768, 1024], timed_sizes=[256, 384, 512],
                        size=512, fast_path_size=256, warmup=1, repeats=3, budget_min=19.0)
    for key, value in defaults.items():
        if key == "no_compile":
            args.no_compile = args.no_compile or value
        elif getattr(args, key) is None:
            setattr(args, key, value)
    return args


def memory_lean_model(args) -> str:
    """The model whose memory-lean training is measured (RefineNet-101 unless --models leaves it out)."""
    return HEADLINE if HEADLINE in args.models else args.models[0]


def plan_jobs(args, device: torch.device, meta: dict) -> list[tuple[str, dict]]:
    """Timed jobs in priority order (the headline comparison first, the sweep last)."""
    base = dict(device=str(device), batch=args.batch, warmup=args.warmup, repeats=args.repeats,
                channels_last=True, amp=None, compile=False, infer=True, train=True)
    # Model comparison under one exact fp32 setting for every model: channels_last (its speed against NCHW is
    # machine-dependent: the report prints the ratio measured in the same run).
    jobs = []
    headline = [m for m in (HEADLINE, DILATED, "FCN-32s-ResNet-101") if m in args.models]
    lean_model = memory_lean_model(args)
    jobs.append(("gemm", {**base, "kind": "gemm", "model": "fp32-GEMM", "size": 0, "n": 512 if args.quick else None}))
    for name in headline[:2]:
        jobs.append(("models", {**base, "model": name, "size": args.size}))
    if MODELS[lean_model][0] == "refinenet":
        settings = ["default", "channels_last+bf16", "peer"] if device.type == "cuda" else ["default", "peer"]
        jobs.append(("speed", {**base, "kind": "speed", "model": lean_model, "size": args.fast_path_size,
                               "settings": settings, "warmup": max(1, args.warmup), "repeats": max(3, args.repeats)}))
    fast_jobs = []
    for setting, fast in FAST_PATHS.items():
        if (fast.compile and args.no_compile) or (args.quick and setting not in ("eager-fp32", "channels_last")):
            continue
        fast_jobs.append(("fast_path:" + setting, {
            **base, "model": lean_model, "size": args.fast_path_size, "channels_last": fast.channels_last,
            "amp": str(fast.amp_dtype).replace("torch.", "") if fast.amp_dtype else None, "compile": fast.compile,
            "warmup": 0 if fast.compile else args.warmup, "repeats": max(1, min(args.repeats, 2))}))
    if MODELS[lean_model][0] == "refinenet":
        jobs.append(("memory_lean", {**base, "model": lean_model, "size": args.size, "memory_lean": True,
                                     "infer": False}))
    image = VOC_IMAGE if not args.quick else (48, 64)
    jobs.append(("evaluation", {**base, "model": lean_model, "kind": "eval", "image": image,
                                "repeats": max(1, args.repeats - 1)}))
    jobs += [j for j in fast_jobs if not j[1]["compile"]]
    jobs += [j for j in fast_jobs if j[1]["compile"]]  # slow to compile on a CPU, so after the essentials
    for name in headline[2:]:
        jobs.append(("models", {**base, "model": name, "size": args.size}))
    sweep = [(n, s) for s in sorted(args.timed_sizes, reverse=True) for n in args.models]
    for name, size in sorted(sweep, key=lambda ns: (ns[0] not in headline, ns[1])):
        if (name, size) == (name, args.size) and name in headline:
            continue
        jobs.append(("models", {**base, "model": name, "size": size}))
    # "where it fits": skip real runs whose counted training activations would not fit comfortably.
    limit = available_memory_bytes(device) * 0.4
    kept = []
    for group, job in jobs:
        counted = meta.get((job.get("model"), job.get("size"), job.get("memory_lean", False)), {})
        if counted.get("train_saved_activation_bytes", 0) > limit:
            print(f"skip {job['model']} @ {job['size']}: {counted['train_saved_activation_bytes'] / 2**30:.1f} GiB of "
                  f"training activations does not fit in 40% of {limit / 0.4 / 2**30:.1f} GiB", flush=True)
            continue
        kept.append((group, job))
    return kept


def fast_path_of(job: dict) -> str:
    if job.get("kind") in ("speed", "gemm"):
        return job["kind"]
    if job.get("kind") == "eval":
        return "channels_last" if job["channels_last"] else "eager-fp32"
    fast = job_fast_path(job)
    label = next((k for k, v in FAST_PATHS.items() if v == fast), fast.name)
    return label + ("+memory_lean" if job.get("memory_lean") else "")


# ----------------------------------------------------------------------------------------------
# The run.


class Rows:
    """The tidy rows of efficiency.csv: one measurement each, with the run's device, torch and code version."""

    def __init__(self, args, common: dict):
        self.batch, self.common, self.rows = args.batch, common, []

    def add(self, model, size, setting, measurement, value, unit, method, dtype="float32") -> None:
        self.rows.append({"model": model, "family": MODELS[model][0] if model in MODELS else "", "input_size": size,
                          "batch": self.batch, "setting": setting, "measurement": measurement, "value": value,
                          "unit": unit, "method": method, "dtype": dtype, **self.common})


def count_shapes(args, rows: Rows, started: float) -> dict:
    """Parameters, FLOPs and counted activations over the whole sweep (cheap, exact); returns them by
    (model, size, memory_lean) for the plan."""
    meta = {}
    lean_models = [memory_lean_model(args)] if MODELS[memory_lean_model(args)][0] == "refinenet" else []
    for name in args.models:
        for size in sorted(set(args.sizes) | set(args.timed_sizes) | {args.size, args.fast_path_size}):
            for lean in (False, True) if name in lean_models else (False,):
                counts = analyse(name, size, lean, args.batch)
                meta[(name, size, lean)] = counts
                setting = "memory_lean" if lean else "any"
                for key, value in counts.items():
                    unit = "bytes" if key.endswith("bytes") else ("pixels" if key.startswith("output") else
                                                                 ("GFLOPs" if key.startswith("gflops") else "count"))
                    rows.add(name, size, setting, key, value, unit, "meta device (shapes only)")
        print(f"[{time.perf_counter() - started:6.0f}s] counted {name}", flush=True)
    return meta


def run_timed(args, device: torch.device, meta: dict, rows: Rows, started: float) -> list[str]:
    """The planned timed jobs, each in a fresh process, within the time budget; returns what was skipped."""
    skipped, reference_output = [], None
    tmp = Path(tempfile.mkdtemp(prefix="efficiency-"))
    for i, (group, job) in enumerate(plan_jobs(args, device, meta)):
        elapsed = time.perf_counter() - started
        label = f"{group} {job.get('model', '')} @ {job.get('size', job.get('image'))}"
        if elapsed > args.budget_min * 60:
            skipped.append(f"{label} (time budget of {args.budget_min:g} min spent)")
            continue
        if group.startswith("fast_path") and job["infer"]:
            job["save_output"] = str(tmp / f"out{i}.pt")
        if args.in_process:
            result, error = run_job(job), ""
        else:
            result, error = spawn(job, timeout=max(60.0, args.budget_min * 60 - elapsed + 120))
        print(f"[{time.perf_counter() - started:6.0f}s] {label} {fast_path_of(job)}: "
              f"{error or f'{len(result)} measurements'}", flush=True)
        if error:
            skipped.append(f"{label} {fast_path_of(job)} ({error})")
            continue
        model = job.get("model", HEADLINE)
        size = job.get("size", "x".join(map(str, job.get("image", ()))))
        dtype = job["amp"] if job.get("amp") else "float32"
        for r in result:
            rows.add(model, size, r.get("setting", fast_path_of(job)), r["measurement"], r["value"], r["unit"],
                     r["method"], dtype=r.get("dtype", dtype))
        if job.get("save_output"):
            output = torch.load(job["save_output"])
            if group == "fast_path:eager-fp32":
                reference_output = output
            if reference_output is not None:
                error_rel = float((output - reference_output).norm() / reference_output.norm())
                agree = float((output.argmax(1) == reference_output.argmax(1)).float().mean())
                rows.add(model, size, fast_path_of(job), "output_relative_error_vs_eager_fp32", error_rel, "ratio",
                         "measured", dtype=dtype)
                rows.add(model, size, fast_path_of(job), "argmax_agreement_vs_eager_fp32", agree, "fraction",
                         "measured", dtype=dtype)
    return skipped


def add_flop_rates(rows: Rows) -> list[str]:
    """Every timed step's achieved GFLOP/s (counted FLOPs / median time) and its fraction of the fp32
    GEMM's FLOP/s, as rows; returns a line per training step for the console."""
    gemm = next((r["value"] for r in rows.rows if r["measurement"] == "fp32_gemm_gflops_per_s"), None)
    if not gemm:
        return []
    counted = {(r["model"], r["input_size"], r["measurement"]): r["value"] for r in rows.rows if r["setting"] == "any"}
    lines = []
    for r in list(rows.rows):
        kind = {"train_step_time": "train_step", "inference_time": "inference"}.get(r["measurement"])
        flops = counted.get((r["model"], r["input_size"], "gflops_train_step" if kind == "train_step"
                             else "gflops_forward"))
        if kind is None or flops is None:
            continue
        rate = flops / r["value"]
        method = "counted FLOPs (FlopCounterMode) / median time; fraction of the fp32 GEMM row"
        rows.add(r["model"], r["input_size"], r["setting"], f"{kind}_gflops_per_s", rate, "GFLOP/s", method, r["dtype"])
        rows.add(r["model"], r["input_size"], r["setting"], f"{kind}_fraction_of_fp32_gemm", rate / gemm, "fraction",
                 method, r["dtype"])
        if kind == "train_step":
            lines.append(f"  {r['model']} @ {r['input_size']} {r['setting']}: training step {rate:.0f} GFLOP/s = "
                         f"{rate / gemm:.2f} of the fp32 GEMM's {gemm:.0f}")
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_csv:
        return render(args, args.from_csv)
    version = code_version_or_exit(args.out, args.allow_dirty)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # every row says how the run was sized and that no dataset is read (random weights and inputs)
    common = {"profile": "bench-quick" if args.quick else "bench", "data": "none (random weights and inputs)",
              "device": device_description(device), "device_type": device.type, "torch": torch.__version__,
              "code_version": version, "date": datetime.datetime.now().isoformat(timespec="seconds")}
    rows = Rows(args, common)
    load_before = os.getloadavg()
    meta = count_shapes(args, rows, started)
    skipped = run_timed(args, device, meta, rows, started)
    print("\n".join(add_flop_rates(rows)), flush=True)
    for r in rows.rows:
        if r["measurement"] == "speed_vs_peer":
            print(f"  {r['model']} @ {r['input_size']} {r['setting']}: {r['value']:.2f}x the peer's speed "
                  f"({r['method'].split('; ')[-1]})", flush=True)

    import pandas as pd

    write_text_atomic(args.out / "efficiency.csv", pd.DataFrame(rows.rows).to_csv(index=False))
    write_text_atomic(args.out / "efficiency-run.json", json.dumps(
        {"skipped": skipped, "minutes": (time.perf_counter() - started) / 60, "load_average": load_before,
         "load_average_end": os.getloadavg()}, indent=1))
    render(args, args.out / "efficiency.csv")
    print(f"wrote {args.out}/efficiency.{{csv,png,md}} in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
