"""The efficiency benchmark's measurements: shape-only counts on the meta device, and timed workers.

`analyse` counts parameters, FLOPs and the activations a training step keeps, for any size, without
computing anything. `run_worker` / `run_eval_worker` time one job (a model at a size under a fast
path; the evaluation helpers) and report its peak memory; `spawn` runs a job in a fresh process
(`python -m benchmarks.efficiency.measure JOB`), so the peak RSS it reports is that job's own.
The models and fast paths compared are in models.py, rendering in report.py, the plan and the command
in benchmark.py.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.efficiency.memory import SavedActivations, current_rss_bytes, peak_rss_bytes
from benchmarks.efficiency.models import NUM_CLASSES, build_model
from benchmarks.provenance import REPO
from refinenet.fastpath import FastPath, apply_fast_path, autocast, prepare_input
from refinenet.inference import PAPER_SCALES, dense_crf, predict_probs
from refinenet.metrics import ConfusionMatrix

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


def _row(measurement: str, value, unit: str, method: str = "measured") -> dict:
    return {"measurement": measurement, "value": value, "unit": unit, "method": method}


def job_fast_path(job: dict) -> FastPath:
    """The fast path a timed job names (its `amp` is a torch dtype name such as "bfloat16", or None)."""
    return FastPath(job["channels_last"], getattr(torch, job["amp"]) if job["amp"] else None, job["compile"])


def run_worker(job: dict) -> list[dict]:
    """One model at one size under one fast path: inference and/or a training step."""
    device = torch.device(job["device"])
    torch.manual_seed(0)
    fast = job_fast_path(job)
    model = build_model(job["model"], job.get("memory_lean", False)).to(device)
    model = apply_fast_path(model, fast)
    size, batch = job["size"], job["batch"]
    x = prepare_input(torch.randn(batch, 3, size, size, device=device), fast)
    target = torch.randint(0, NUM_CLASSES, (batch, size, size), device=device)
    rows = []
    if job["infer"]:
        rows += _time_inference(model, x, fast, device, job)
    if job["train"]:
        rows += _time_training(model, x, target, fast, device, job)
    return rows


def _time_inference(model, x, fast: FastPath, device: torch.device, job: dict) -> list[dict]:
    model.eval()
    rows = []

    def infer():
        with torch.inference_mode(), autocast(fast, device):
            return model(x)

    if fast.compile:
        start = time.perf_counter()
        infer()
        rows.append(_row("compile_time_inference", time.perf_counter() - start, "s"))
    _reset_peak(device)
    seconds = _median_time(infer, device, job["warmup"], job["repeats"])
    rows.append(_row("inference_time", seconds, "s"))
    rows.append(_row("inference_throughput", x.shape[0] / seconds, "images/s"))
    kind, peak = _peak_memory(device)
    rows.append(_row(f"inference_{kind}", peak, "bytes"))
    if job.get("save_output"):
        torch.save(infer().float().cpu(), job["save_output"])
    return rows


def _time_training(model, x, target, fast: FastPath, device: torch.device, job: dict) -> list[dict]:
    model.train()
    rows = []

    def train_step():
        model.zero_grad(set_to_none=True)
        with autocast(fast, device):
            scores = model(x)
        F.cross_entropy(scores.float(), target).backward()

    if fast.compile:
        start = time.perf_counter()
        train_step()
        rows.append(_row("compile_time_train_step", time.perf_counter() - start, "s"))
    # Count what autograd keeps for the backward pass, once, on the real device; this step is
    # also the first warm-up step.
    rss_before = current_rss_bytes()
    _reset_peak(device)
    model.zero_grad(set_to_none=True)
    with SavedActivations(model) as saved:
        with autocast(fast, device):
            scores = model(x)
    rows.append(_row("train_saved_activation_bytes", saved.bytes, "bytes", "saved-tensor hooks"))
    F.cross_entropy(scores.float(), target).backward()
    del scores, saved
    seconds = _median_time(train_step, device, max(0, job["warmup"] - 1), job["repeats"])
    rows.append(_row("train_step_time", seconds, "s"))
    rows.append(_row("train_throughput", x.shape[0] / seconds, "images/s"))
    kind, peak = _peak_memory(device)
    rows.append(_row(f"train_{kind}", peak, "bytes"))
    if device.type == "cpu":
        rows.append(_row("rss_before_train_step", rss_before, "bytes"))
    return rows


def run_eval_worker(job: dict) -> list[dict]:
    """RefineNet-101 on a VOC-sized image: single- vs multi-scale (+ dense CRF), inference_mode vs
    no_grad, and the confusion-matrix update on the device."""
    device = torch.device(job["device"])
    torch.manual_seed(0)
    fast = FastPath(job["channels_last"], None, False)
    model = apply_fast_path(build_model(job["model"]).to(device), fast).eval()
    height, width = job["image"]
    image = prepare_input(torch.randn(1, 3, height, width, device=device), fast)
    rgb = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8).numpy()
    w, r = job["warmup"], job["repeats"]
    rows = []

    def add(measurement: str, value, unit: str) -> None:
        rows.append(_row(measurement, value, unit))

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
    cmd = [sys.executable, "-m", "benchmarks.efficiency.measure", json.dumps(job)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return [], f"timed out after {timeout:.0f} s"
    if done.returncode != 0:
        return [], f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:] or ''}"
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


def run_job(job: dict) -> list[dict]:
    if job.get("kind") in ("speed", "gemm"):  # the step against the peer, the GEMM limit: speed.py
        from benchmarks.efficiency.speed import bench_rows

        return bench_rows(job)
    return run_eval_worker(job) if job.get("kind") == "eval" else run_worker(job)


if __name__ == "__main__":  # a worker process started by `spawn`: the job as JSON in, its rows as JSON out
    print(json.dumps(run_job(json.loads(sys.argv[1]))))
