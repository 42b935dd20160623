"""The paper's cost claim against dilated networks, measured, and RefineNet's fast paths.

Sec. 1-2 and Fig. 2 of the paper argue that dilated ResNets (Fig. 2b, DeepLab) are "computationally
expensive" and "require huge GPU memory resources, especially in the training stage", while
RefineNet (Fig. 2c) produces 1/4-resolution predictions from down-sampled features. This script
measures, per model and input size:

* parameters, GFLOPs (torch.utils.flop_counter.FlopCounterMode: convolutions and matmuls) of a
  forward pass and of a training step, output (score map) resolution;
* training activation memory, counted exactly with saved-tensor hooks (benchmarks/memory.py), over
  the whole sweep on the meta device (shapes only, nothing computed);
* peak memory of a training step and of inference: CUDA max_memory_allocated on a GPU, peak RSS of
  a fresh worker process on CPU (every timed measurement runs in its own process);
* time per inference / training step (median of repeats after warm-up) and images/s;
* fast paths for RefineNet-101 (eager fp32 vs channels_last vs bf16 autocast vs torch.compile),
  torch.inference_mode vs no_grad, the confusion matrix on the device;
* memory-lean training (RefineNetConfig.memory_lean) against the default;
* single-scale vs multi-scale (PAPER_SCALES) vs multi-scale + dense CRF on a VOC-sized image.

Writes <out>/efficiency.csv (tidy), efficiency.png and efficiency.md. `nox -s bench -- --help`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.baselines import DilatedResNetASPP, FCN32sResNet  # noqa: E402
from benchmarks.memory import SavedActivations, current_rss_bytes, peak_rss_bytes  # noqa: E402
from refinenet.fastpath import EAGER_FP32, FastPath, apply_fast_path, autocast, prepare_input  # noqa: E402
from refinenet.model import build_refinenet  # noqa: E402
from refinenet.utils import code_version  # noqa: E402

NUM_CLASSES = 21  # PASCAL VOC
HEADLINE, DILATED = "RefineNet-101", "Dilated-ResNet-101-OS8"
# name -> (family, builder). RefineNet uses the VOC setting of the released checkpoints (4 pooling blocks).


def _refinenet(backbone: str = "resnet101", variant: str = "4-cascaded"):
    return lambda **kw: build_refinenet(NUM_CLASSES, backbone=backbone, variant=variant, pooling_blocks=4, **kw)


MODELS = {
    "RefineNet-50": ("refinenet", _refinenet("resnet50")),
    "RefineNet-101": ("refinenet", _refinenet("resnet101")),
    "RefineNet-152": ("refinenet", _refinenet("resnet152")),
    # Table 9 variants with ResNet-101
    "RefineNet-101-single": ("refinenet", _refinenet(variant="single")),
    "RefineNet-101-2-cascaded": ("refinenet", _refinenet(variant="2-cascaded")),
    "RefineNet-101-4-cascaded-2-scale": ("refinenet", _refinenet(variant="4-cascaded-2-scale")),
    "Dilated-ResNet-101-OS8": ("dilated", lambda **kw: DilatedResNetASPP(NUM_CLASSES, output_stride=8)),
    "Dilated-ResNet-101-OS4": ("dilated", lambda **kw: DilatedResNetASPP(NUM_CLASSES, output_stride=4)),
    "FCN-32s-ResNet-101": ("fcn", lambda **kw: FCN32sResNet(NUM_CLASSES)),
}
QUICK_MODELS = ("RefineNet-50", "Dilated-ResNet-101-OS8", "FCN-32s-ResNet-101")
FAST_PATHS = {
    "eager-fp32": EAGER_FP32,
    "channels_last": FastPath(channels_last=True),
    "bf16-autocast": FastPath(amp_dtype=torch.bfloat16),
    "channels_last+bf16": FastPath(channels_last=True, amp_dtype=torch.bfloat16),
    "compile+channels_last": FastPath(channels_last=True, compile=True),
}
VOC_IMAGE = (375, 500)  # H x W of a typical PASCAL VOC image (Sec. 4.1)


def build_model(name: str, memory_lean: bool = False) -> torch.nn.Module:
    family, builder = MODELS[name]
    return builder(memory_lean=memory_lean) if family == "refinenet" else builder()


# ----------------------------------------------------------------------------------------------
# Shape-only analysis on the meta device: parameters, FLOPs, saved activations, output resolution.


def analyse(name: str, size: int, memory_lean: bool = False, batch: int = 1) -> dict:
    with torch.device("meta"):
        model = build_model(name, memory_lean)
    x = torch.empty(batch, 3, size, size, device="meta")
    score_shape = {}

    def record_score_shape(module, inputs, output):
        score_shape.setdefault("hw", tuple(output.shape[-2:]))

    model.classifier.register_forward_hook(record_score_shape)
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as forward_flops:
        model(x)
    model.train()
    with FlopCounterMode(display=False) as train_flops:
        with SavedActivations(model) as saved:
            out = model(x)
        out.float().sum().backward()
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "gflops_forward": forward_flops.get_total_flops() / 1e9,
        "gflops_train_step": train_flops.get_total_flops() / 1e9,
        "train_saved_activation_bytes": saved.bytes,
        "output_height": score_shape["hw"][0],
        "output_width": score_shape["hw"][1],
    }


# ----------------------------------------------------------------------------------------------
# Timed measurements, each in a fresh worker process (so peak RSS belongs to that measurement).


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn, device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_memory(device: torch.device) -> tuple[str, int]:
    if device.type == "cuda":
        return "cuda_max_memory_allocated", torch.cuda.max_memory_allocated(device)
    return "peak_rss", peak_rss_bytes()


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def run_worker(job: dict) -> list[dict]:
    """One model at one size under one fast path: inference and/or a training step."""
    device = torch.device(job["device"])
    torch.manual_seed(0)
    fast = FastPath(job["channels_last"], getattr(torch, job["amp"]) if job["amp"] else None, job["compile"])
    model = build_model(job["model"], job.get("memory_lean", False)).to(device)
    model = apply_fast_path(model, fast)
    size, batch = job["size"], job["batch"]
    x = prepare_input(torch.randn(batch, 3, size, size, device=device), fast)
    target = torch.randint(0, NUM_CLASSES, (batch, size, size), device=device)
    rows = []

    def add(measurement, value, unit, method="measured"):
        rows.append({"measurement": measurement, "value": value, "unit": unit, "method": method})

    if job["infer"]:
        model.eval()

        def infer():
            with torch.inference_mode(), autocast(fast, device):
                return model(x)

        if fast.compile:
            start = time.perf_counter()
            infer()
            add("compile_time_inference", time.perf_counter() - start, "s")
        _reset_peak(device)
        seconds = _median_time(infer, device, job["warmup"], job["repeats"])
        add("inference_time", seconds, "s")
        add("inference_throughput", batch / seconds, "images/s")
        kind, peak = _peak_memory(device)
        add(f"inference_{kind}", peak, "bytes")
        if job.get("save_output"):
            torch.save(infer().float().cpu(), job["save_output"])
    if job["train"]:
        model.train()

        def train_step():
            model.zero_grad(set_to_none=True)
            with autocast(fast, device):
                scores = model(x)
            F.cross_entropy(scores.float(), target).backward()

        if fast.compile:
            start = time.perf_counter()
            train_step()
            add("compile_time_train_step", time.perf_counter() - start, "s")
        # Count what autograd keeps for the backward pass, once, on the real device; this step is
        # also the first warm-up step.
        rss_before = current_rss_bytes()
        _reset_peak(device)
        model.zero_grad(set_to_none=True)
        with SavedActivations(model) as saved:
            with autocast(fast, device):
                scores = model(x)
        add("train_saved_activation_bytes", saved.bytes, "bytes", "saved-tensor hooks")
        F.cross_entropy(scores.float(), target).backward()
        del scores, saved
        seconds = _median_time(train_step, device, max(0, job["warmup"] - 1), job["repeats"])
        add("train_step_time", seconds, "s")
        add("train_throughput", batch / seconds, "images/s")
        kind, peak = _peak_memory(device)
        add(f"train_{kind}", peak, "bytes")
        if device.type == "cpu":
            add("rss_before_train_step", rss_before, "bytes")
    return rows


def run_eval_worker(job: dict) -> list[dict]:
    """RefineNet-101 on a VOC-sized image: single- vs multi-scale (+ dense CRF), inference_mode vs
    no_grad, and the confusion-matrix update on the device."""
    from refinenet.inference import PAPER_SCALES, dense_crf, predict_probs
    from refinenet.metrics import ConfusionMatrix

    device = torch.device(job["device"])
    torch.manual_seed(0)
    fast = FastPath(job["channels_last"], None, False)
    model = apply_fast_path(build_model(job["model"]).to(device), fast).eval()
    height, width = job["image"]
    image = prepare_input(torch.randn(1, 3, height, width, device=device), fast)
    rgb = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8).numpy()
    w, r = job["warmup"], job["repeats"]
    rows = []

    def add(measurement, value, unit):
        rows.append({"measurement": measurement, "value": value, "unit": unit, "method": "measured"})

    add("time_single_scale", _median_time(lambda: predict_probs(model, image), device, w, r), "s")
    probs = {}
    add("time_multi_scale", _median_time(lambda: probs.update(p=predict_probs(model, image, PAPER_SCALES)),
                                         device, w, r), "s")
    crf_seconds = _median_time(lambda: dense_crf(rgb, probs["p"][0]), device, 0, max(1, r))
    add("time_dense_crf", crf_seconds, "s")

    def msc_crf():
        dense_crf(rgb, predict_probs(model, image, PAPER_SCALES)[0])

    add("time_multi_scale_crf", _median_time(msc_crf, device, 0, r), "s")

    def no_grad_forward():
        with torch.no_grad():
            model(image)

    def inference_mode_forward():
        with torch.inference_mode():
            model(image)

    add("time_forward_no_grad", _median_time(no_grad_forward, device, w, r), "s")
    add("time_forward_inference_mode", _median_time(inference_mode_forward, device, w, r), "s")
    pred = probs["p"].argmax(1)
    target = torch.randint(0, NUM_CLASSES, pred.shape, device=device)

    def confusion(on_device: bool):
        matrix = ConfusionMatrix(NUM_CLASSES)
        matrix.update(pred if on_device else pred.cpu(), target if on_device else target.cpu())
        matrix.compute()

    add("time_confusion_matrix_on_device", _median_time(lambda: confusion(True), device, w, 10), "s")
    add("time_confusion_matrix_via_cpu", _median_time(lambda: confusion(False), device, w, 10), "s")
    return rows


def spawn(job: dict, timeout: float) -> tuple[list[dict], str]:
    """Run a job in a fresh Python process; returns (rows, error message or "")."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return [], f"timed out after {timeout:.0f} s"
    if done.returncode != 0:
        return [], f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:] or ''}"
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


# ----------------------------------------------------------------------------------------------
# The plan, the run, and the outputs.


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = "CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {torch.get_num_threads()} threads"


def available_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable"):
            return int(line.split()[1]) * 1024
    return 8 << 30


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
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
    p.add_argument("--worker", help=argparse.SUPPRESS)
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


def plan_jobs(args, device: torch.device, meta: dict) -> list[tuple[str, dict]]:
    """Timed jobs in priority order (the headline comparison first, the sweep last)."""
    base = dict(device=str(device), batch=args.batch, warmup=args.warmup, repeats=args.repeats,
                channels_last=True, amp=None, compile=False, infer=True, train=True)
    # Model comparison under one exact fp32 setting: channels_last (the fastest exact one; see the fast paths).
    jobs = []
    headline = [m for m in (HEADLINE, DILATED, "FCN-32s-ResNet-101") if m in args.models]
    lean_model = HEADLINE if HEADLINE in args.models else args.models[0]
    for name in headline[:2]:
        jobs.append(("models", {**base, "model": name, "size": args.size}))
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
    if job.get("kind") == "eval":
        return "channels_last" if job["channels_last"] else "eager-fp32"
    fast = FastPath(job["channels_last"], getattr(torch, job["amp"]) if job["amp"] else None, job["compile"])
    label = next((k for k, v in FAST_PATHS.items() if v == fast), fast.name)
    return label + ("+memory_lean" if job.get("memory_lean") else "")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        rows = run_eval_worker(job) if job.get("kind") == "eval" else run_worker(job)
        print(json.dumps(rows))
        return 0
    if args.from_csv:
        return render(args, args.from_csv)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    common = {"device": device_description(device), "device_type": device.type, "torch": torch.__version__,
              "code_version": code_version(), "date": datetime.datetime.now().isoformat(timespec="seconds")}
    rows: list[dict] = []
    load_before = os.getloadavg()

    def emit(model, size, setting, measurement, value, unit, method, batch=args.batch, dtype="float32"):
        rows.append({"model": model, "family": MODELS[model][0] if model in MODELS else "", "input_size": size,
                     "batch": batch, "setting": setting, "measurement": measurement, "value": value, "unit": unit,
                     "method": method, "dtype": dtype, **common})

    # 1. Shape-only counts over the whole sweep (cheap, exact).
    meta = {}
    lean_target = HEADLINE if HEADLINE in args.models else args.models[0]  # the model plan_jobs times lean
    lean_targets = [lean_target] if MODELS[lean_target][0] == "refinenet" else []
    for name in args.models:
        for size in sorted(set(args.sizes) | set(args.timed_sizes) | {args.size, args.fast_path_size}):
            for lean in (False, True) if name in lean_targets else (False,):
                counts = analyse(name, size, lean, args.batch)
                meta[(name, size, lean)] = counts
                setting = "memory_lean" if lean else "any"
                for key, value in counts.items():
                    unit = "bytes" if key.endswith("bytes") else ("pixels" if key.startswith("output") else
                                                                 ("GFLOPs" if key.startswith("gflops") else "count"))
                    emit(name, size, setting, key, value, unit, "meta device (shapes only)")
        print(f"[{time.perf_counter() - started:6.0f}s] counted {name}", flush=True)

    # 2. Timed jobs, in fresh processes, within the time budget.
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
            result, error = run_eval_worker(job) if job.get("kind") == "eval" else run_worker(job), ""
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
            emit(model, size, fast_path_of(job), r["measurement"], r["value"], r["unit"], r["method"], dtype=dtype)
        if job.get("save_output"):
            output = torch.load(job["save_output"])
            if group == "fast_path:eager-fp32":
                reference_output = output
            if reference_output is not None:
                error_rel = float((output - reference_output).norm() / reference_output.norm())
                agree = float((output.argmax(1) == reference_output.argmax(1)).float().mean())
                emit(model, size, fast_path_of(job), "output_relative_error_vs_eager_fp32", error_rel, "ratio",
                     "measured", dtype=dtype)
                emit(model, size, fast_path_of(job), "argmax_agreement_vs_eager_fp32", agree, "fraction",
                     "measured", dtype=dtype)

    import pandas as pd

    table = pd.DataFrame(rows)
    table.to_csv(args.out / "efficiency.csv", index=False)
    (args.out / "efficiency-run.json").write_text(json.dumps(
        {"skipped": skipped, "minutes": (time.perf_counter() - started) / 60, "load_average": load_before,
         "load_average_end": os.getloadavg()}, indent=1))
    render(args, args.out / "efficiency.csv")
    print(f"wrote {args.out}/efficiency.{{csv,png,md}} in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    return 0


def render(args, csv_path: Path) -> int:
    """The figure and the summary, from the CSV (and the run's notes beside it)."""
    import pandas as pd

    table = pd.read_csv(csv_path)
    first = table.iloc[0]
    common = {k: first[k] for k in ("device", "device_type", "torch", "code_version", "date")}
    notes_path = csv_path.with_name("efficiency-run.json")
    notes = json.loads(notes_path.read_text()) if notes_path.exists() else {}
    plot(table, args.out / "efficiency.png", common["device"])
    (args.out / "efficiency.md").write_text(summary(table, args, common, notes))
    return 0


# ----------------------------------------------------------------------------------------------
# Figure and summary.


def plot(table, path: Path, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("train_saved_activation_bytes", "any", 2**30, "training activations (GiB, counted)"),
        ("train_peak_rss" if "train_peak_rss" in set(table.measurement) else "train_cuda_max_memory_allocated",
         "channels_last", 2**30, "training-step peak memory (GiB)"),
        ("inference_time", "channels_last", 1, "inference time (s / image)"),
        ("train_step_time", "channels_last", 1, "training step time (s)"),
    ]
    colors = {model: f"C{i}" for i, model in enumerate(MODELS)}  # one colour per model in every panel
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    for ax, (measurement, setting, scale, title) in zip(axes, panels):
        sel = table[(table.measurement == measurement) & (table.setting == setting)]
        for model, group in sel.groupby("model", sort=False):
            # A size measured twice (model sweep and fast-path job share fp32 channels_last): keep the
            # fastest / smallest, the one least disturbed by other work on the machine.
            group = group.assign(input_size=group.input_size.astype(int), value=group.value.astype(float))
            group = group.groupby("input_size", as_index=False).value.min()
            ax.plot(group.input_size, group.value / scale, marker="o", label=model,
                    color=colors.get(model))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("input size (pixels per side)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"RefineNet vs dilated ResNet-101 (DeepLab-v2 ASPP) vs FCN-32s, batch 1, fp32 — {device}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _value(table, model, size, setting, measurement):
    sel = table[(table.model == model) & (table.input_size.astype(str) == str(size)) & (table.setting == setting)
                & (table.measurement == measurement)]
    return float(sel.value.astype(float).min()) if len(sel) else float("nan")  # duplicates: see plot()


def summary(table, args, common: dict, notes: dict) -> str:
    size, fp_size = args.size, args.fast_path_size
    skipped, total_s = notes.get("skipped", []), notes.get("minutes", float("nan")) * 60
    load = notes.get("load_average")
    models = list(dict.fromkeys(table.model))
    ref = HEADLINE if HEADLINE in models else models[0]  # --quick / --models runs may leave RefineNet-101 out
    gib = 2**30
    mem_peak = "train_peak_rss" if common["device_type"] == "cpu" else "train_cuda_max_memory_allocated"
    inf_peak = "inference_peak_rss" if common["device_type"] == "cpu" else "inference_cuda_max_memory_allocated"
    lines = [
        "# Efficiency: RefineNet against dilated networks",
        "",
        f"Device: **{common['device']}** ({common['device_type']}); torch {common['torch']};"
        f" code {common['code_version']}; {common['date']}. Batch {args.batch}, random weights, 21 classes."
        f" Produced by `python benchmarks/efficiency.py{' --quick' if args.quick else ''}` (`nox -s bench`)"
        f" in {total_s / 60:.1f} min; every number below is in"
        " `efficiency.csv`."
        + (f" Load average (1/5/15 min) at the start {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, at the end"
           f" {notes['load_average_end'][0]:.1f} ({os.cpu_count()} cores)." if load else "")
        + (" The machine was shared with other jobs, so CPU times are inflated by contention and noisy;"
           " ratios between models measured back to back less so."
           if load and max(load[0], notes["load_average_end"][0]) > os.cpu_count() else ""),
        "",
        f"Timing: median of {args.repeats} repeats after {args.warmup} warm-up; each timed measurement runs in a fresh"
        " process, so its peak RSS is its own (on CPU the RSS includes the interpreter, torch and the weights"
        " — about 1 GiB — and the gradients). Model comparison timings use fp32 channels_last (exact fp32"
        f" numbers; the fastest exact setting, see the fast paths). Counted memory and FLOPs"
        f" cover sizes {sorted(set(args.sizes))}; timing covers {sorted(set(args.timed_sizes))} (chosen so the CPU"
        " run stays near 20 minutes on 2 cores). FLOPs are FlopCounterMode's convolution/matmul FLOPs"
        " (2 per multiply-add); training activations are the bytes autograd saves for the backward pass,"
        " counted exactly with saved-tensor hooks (parameters excluded).",
        "",
        f"## RefineNet-101 vs dilated ResNet-101 (output stride 8, ASPP) at {size}x{size}",
        "",
        "| measurement | RefineNet-101 | dilated ResNet-101 OS8 | ratio |",
        "|---|---|---|---|",
    ]
    rows = [
        ("score map resolution", "output_height", "any", 1, "{:.0f}"),
        ("parameters (M)", "params", "any", 1e6, "{:.1f}"),
        ("GFLOPs, forward", "gflops_forward", "any", 1, "{:.0f}"),
        ("GFLOPs, training step", "gflops_train_step", "any", 1, "{:.0f}"),
        ("training activations (GiB, counted)", "train_saved_activation_bytes", "any", gib, "{:.2f}"),
        ("training-step peak memory (GiB)", mem_peak, "channels_last", gib, "{:.2f}"),
        ("inference peak memory (GiB)", inf_peak, "channels_last", gib, "{:.2f}"),
        ("inference time (s)", "inference_time", "channels_last", 1, "{:.3f}"),
        ("training step time (s)", "train_step_time", "channels_last", 1, "{:.3f}"),
    ]
    for label, measurement, setting, scale, fmt in rows:
        a = _value(table, ref, size, setting, measurement)
        b = _value(table, DILATED, size, setting, measurement)
        lines.append(f"| {label} | {fmt.format(a / scale)} | {fmt.format(b / scale)} | {a / b:.2f} |")
    lines += ["", "All models, counted at each size (GFLOPs forward / training activations GiB):", "",
              "| model | params (M) | " + " | ".join(f"{s}" for s in sorted(set(args.sizes))) + " |",
              "|---|---|" + "---|" * len(set(args.sizes))]
    for model in models:
        cells = [f"{_value(table, model, s, 'any', 'gflops_forward'):.0f} / "
                 f"{_value(table, model, s, 'any', 'train_saved_activation_bytes') / gib:.2f}"
                 for s in sorted(set(args.sizes))]
        params = _value(table, model, size, "any", "params") / 1e6
        lines.append(f"| {model} | {params:.1f} | " + " | ".join(cells) + " |")
    lines += ["", "Timed (fp32 channels_last; inference s / training step s / training peak memory GiB):", "",
              "| model | " + " | ".join(str(s) for s in sorted(set(args.timed_sizes))) + " |",
              "|---|" + "---|" * len(set(args.timed_sizes))]
    for model in models:
        cells = [f"{_value(table, model, s, 'channels_last', 'inference_time'):.3f} / "
                 f"{_value(table, model, s, 'channels_last', 'train_step_time'):.3f} / "
                 f"{_value(table, model, s, 'channels_last', mem_peak) / gib:.2f}"
                 for s in sorted(set(args.timed_sizes))]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")

    lines += ["", f"## Fast paths, RefineNet-101 at {fp_size}x{fp_size}", "",
              "| setting | inference s | speed-up | training step s | speed-up | compile s (inf / train) |"
              " rel. error vs fp32 | argmax agreement |", "|---|---|---|---|---|---|---|---|"]
    base_inf = _value(table, ref, fp_size, "eager-fp32", "inference_time")
    base_train = _value(table, ref, fp_size, "eager-fp32", "train_step_time")
    for setting in FAST_PATHS:
        inf = _value(table, ref, fp_size, setting, "inference_time")
        train = _value(table, ref, fp_size, setting, "train_step_time")
        comp = ""
        if "compile" in setting:
            comp = (f"{_value(table, ref, fp_size, setting, 'compile_time_inference'):.0f} / "
                    f"{_value(table, ref, fp_size, setting, 'compile_time_train_step'):.0f}")
        err = _value(table, ref, fp_size, setting, "output_relative_error_vs_eager_fp32")
        agree = _value(table, ref, fp_size, setting, "argmax_agreement_vs_eager_fp32")
        lines.append(f"| {setting} | {inf:.3f} | {base_inf / inf:.2f}x | {train:.3f} | {base_train / train:.2f}x |"
                     f" {comp} | {err:.1e} | {agree:.4f} |")
    from refinenet.fastpath import default_fast_path

    lines += ["", f"`default_fast_path({common['device_type']!r})` = `{default_fast_path(common['device_type'])}`"
              " (refinenet/fastpath.py). On CUDA the default (channels_last + bf16 autocast) is the usual choice and"
              " was not measured here unless this run's device is a GPU.", ""]
    image = "x".join(map(str, VOC_IMAGE if not args.quick else (48, 64)))
    ev = lambda m: _value(table, ref, image, "channels_last", m)
    lines += [f"Evaluation helpers ({image} image, channels_last fp32): forward under no_grad"
              f" {ev('time_forward_no_grad'):.3f} s vs inference_mode {ev('time_forward_inference_mode'):.3f} s;"
              f" confusion-matrix update on the device {ev('time_confusion_matrix_on_device') * 1e3:.1f} ms vs via"
              f" the CPU {ev('time_confusion_matrix_via_cpu') * 1e3:.1f} ms (the same thing on a CPU run).", ""]

    lines += [f"## Memory-lean training (RefineNet-101, {size}x{size}, fp32 channels_last)", "",
              "| | default | memory_lean | ratio |", "|---|---|---|---|"]
    for label, measurement, setting_lean, setting_default, scale, fmt in [
        ("training activations, counted on the meta device (GiB)", "train_saved_activation_bytes", "memory_lean", "any",
         gib, "{:.3f}"),
        ("training activations, counted in the real step (GiB)", "train_saved_activation_bytes",
         "channels_last+memory_lean", "channels_last", gib, "{:.3f}"),
        ("training-step peak memory (GiB)", mem_peak, "channels_last+memory_lean", "channels_last", gib, "{:.2f}"),
        ("training step time (s)", "train_step_time", "channels_last+memory_lean", "channels_last", 1, "{:.3f}"),
    ]:
        a = _value(table, ref, size, setting_default, measurement)
        b = _value(table, ref, size, setting_lean, measurement)
        lines.append(f"| {label} | {fmt.format(a / scale)} | {fmt.format(b / scale)} | {b / a:.2f} |")
    lines += ["", "memory_lean recomputes every RefineNet block and every ResNet stage in the backward pass"
              " (non-reentrant torch.utils.checkpoint, RNG state restored) and sums in place where no backward"
              " needs the overwritten tensor; outputs and gradients are bit-identical (tests/test_memory_lean.py)."
              " Counted activations are what the forward pass keeps; the peak also holds one block's recomputed"
              " activations during the backward pass.", ""]

    lines += [f"## Multi-scale and CRF cost, RefineNet-101, one {image} image (fp32 channels_last)", "",
              "| single scale | multi-scale (PAPER_SCALES) | dense CRF alone | multi-scale + dense CRF |",
              "|---|---|---|---|",
              f"| {ev('time_single_scale'):.2f} s | {ev('time_multi_scale'):.2f} s | {ev('time_dense_crf'):.2f} s |"
              f" {ev('time_multi_scale_crf'):.2f} s |", ""]
    if skipped:
        lines += ["## Not measured in this run", ""] + [f"- {s}" for s in skipped] + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
