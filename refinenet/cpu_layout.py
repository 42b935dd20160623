"""The memory format of CPU runs (NCHW or channels_last), picked per machine from a short timing.

channels_last is exact where batch norm is frozen (refinenet/fastpath.py), but whether it is faster
depends on the CPU's oneDNN kernels: per RefineNet-101 training step (256x256, batch 1, frozen batch
norm) it was 1.19x on an Intel Xeon and 0.75x on an AMD EPYC. So no fixed CPU default is right. The
first run on a machine times a few steps of a small probe (RefineNet-50 at 160x160, batch 1, random
weights) in both layouts, alternating, and keeps channels_last only when its median is at least
`MARGIN` faster: never slower than NCHW. The decision is cached as JSON, one entry per CPU model,
torch version, thread count, batch-norm state and step (training or inference), in
`$REFINENET_CACHE_DIR/fastpath.json` (default `~/.cache/refinenet/fastpath.json`); delete the file
to time again. A timing taken while other processes kept the cores busy (/proc/stat: fewer idle cores
than this process's threads during the warm-up) says nothing: the run keeps NCHW, caches nothing,
and the next process times again. While batch norm trains, NCHW is kept without timing (refinenet/fastpath.py).

`REFINENET_CPU_LAYOUT=nchw` or `=channels_last` skips the timing (the test suite sets nchw, so its
numbers do not depend on the machine); `--channels-last` / `--no-channels-last` override both.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from refinenet.atomic import write_text_atomic

MARGIN = 0.05  # channels_last must be at least 5% faster than NCHW to be picked
PROBE_SIZE = 160  # pixels per side of the probe's input
PROBE_REPEATS = 3  # timed steps per layout, after one warm-up step each
BUSY_SLACK = 0.5  # busy: other processes left fewer than (threads - BUSY_SLACK) cores idle
STEPS = ("train", "inference")
LAYOUT_ENV = "REFINENET_CPU_LAYOUT"
CACHE_ENV = "REFINENET_CACHE_DIR"

# step -> {"nchw": [seconds per step], "channels_last": [...], "other_cores": float}; `probe_timings` is
# the real one. "other_cores": how many cores other processes kept busy meanwhile (missing: none).
Timer = Callable[[str], dict]


@dataclass(frozen=True)
class LayoutChoice:
    channels_last: bool
    reason: str  # for the run's log: how the layout was decided


_DECIDED: dict[str, LayoutChoice] = {}  # this process's decisions, busy ones included: time at most once


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cache_file() -> Path:
    root = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "refinenet"
    return Path(root) / "fastpath.json"


def cache_key(batchnorm_trains: bool, step: str) -> str:
    """What a decision depends on: the machine's kernels (CPU, torch, threads) and the workload."""
    return (f"{cpu_model()} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
            f"batch norm {'trains' if batchnorm_trains else 'frozen'} | {step}")


def _read_cache(path: Path) -> dict:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: time again and rewrite it
    return entries if isinstance(entries, dict) else {}


def pick_cpu_layout(batchnorm_trains: bool, step: str = "train", timer: Timer | None = None,
                    margin: float = MARGIN) -> LayoutChoice:
    """NCHW or channels_last for this machine and workload (cached; timed the first time)."""
    if step not in STEPS:
        raise ValueError(f"step must be one of {STEPS}, got {step!r}")
    forced = os.environ.get(LAYOUT_ENV, "").strip().lower()
    if forced and forced != "auto":
        if forced not in ("nchw", "channels_last"):
            raise ValueError(f"{LAYOUT_ENV} must be nchw, channels_last or auto, got {forced!r}")
        return LayoutChoice(forced == "channels_last", f"{LAYOUT_ENV}={forced}")
    if batchnorm_trains and step == "train":
        return LayoutChoice(False, "batch norm trains: NCHW kept, not timed")
    path, key = cache_file(), cache_key(batchnorm_trains, step)
    entries = _read_cache(path)
    if key in entries:
        return _choice(entries[key], margin, "cached")
    memo = f"{path} | {key}"
    if memo in _DECIDED:
        return _DECIDED[memo]
    _DECIDED[memo] = _time_and_cache(path, key, (timer or probe_timings), step, margin)
    return _DECIDED[memo]


def _time_and_cache(path: Path, key: str, timer: Timer, step: str, margin: float) -> LayoutChoice:
    started = time.perf_counter()
    timings = dict(timer(step))
    others = timings.pop("other_cores", 0.0)
    if machine_busy(others):
        return LayoutChoice(False, f"machine busy while timing (other processes kept {others:.1f} cores busy): "
                                   "NCHW, not cached")
    entry = {
        "speedup": statistics.median(timings["nchw"]) / statistics.median(timings["channels_last"]),
        "seconds": timings, "other_cores": round(others, 2),
        "probe": f"RefineNet-50, {PROBE_SIZE}x{PROBE_SIZE}, batch 1",
        "timed_for_s": round(time.perf_counter() - started, 1), "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    entries = _read_cache(path)  # another process may have written meanwhile
    entries[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(entries, indent=1) + "\n")
    except OSError:
        pass  # a read-only home: decide now, time again in the next process
    return _choice(entry, margin, "timed")


def _choice(entry: dict, margin: float, how: str) -> LayoutChoice:
    speedup = float(entry["speedup"])
    if speedup >= 1.0 + margin:
        return LayoutChoice(True, f"picked: {speedup:.2f}x over nchw, {how}")
    return LayoutChoice(False, f"picked: channels_last {speedup:.2f}x of nchw, {how}")


def machine_busy(other_cores: float) -> bool:
    """Did other processes leave too few idle cores for this process's threads?"""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return cores - other_cores < min(torch.get_num_threads(), cores) - BUSY_SLACK


def _busy_cpu_seconds() -> float | None:
    """CPU seconds every process on the machine has used since boot (/proc/stat), None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _other_cores(since: tuple[float | None, float, float]) -> float:
    """Cores other processes kept busy on average since `since` = (busy seconds, own CPU s, wall s)."""
    busy, own, wall = since
    now = _busy_cpu_seconds()
    if busy is None or now is None:
        return 0.0
    return max(0.0, (now - busy) - (time.process_time() - own)) / max(time.perf_counter() - wall, 1e-9)


def probe_timings(step: str, repeats: int = PROBE_REPEATS) -> dict:
    """Seconds per training step (frozen batch norm) or inference of the probe in both layouts,
    alternating, after a warm-up step each, and the cores other processes kept busy meanwhile (it
    stops after the warm-up if the machine is busy). The caller's random state is left as it was."""
    from refinenet.model import build_refinenet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        base = build_refinenet(21, backbone="resnet50", pooling_blocks=4)
        x = torch.randn(1, 3, PROBE_SIZE, PROBE_SIZE)
        target = torch.randint(0, 21, (1, PROBE_SIZE, PROBE_SIZE))
        models = {"nchw": base, "channels_last": copy.deepcopy(base).to(memory_format=torch.channels_last)}
        inputs = {"nchw": x, "channels_last": x.contiguous(memory_format=torch.channels_last)}

        def run(layout: str) -> float:
            model = models[layout].train(step == "train")
            start = time.perf_counter()
            if step == "train":
                model.zero_grad(set_to_none=True)
                F.cross_entropy(model(inputs[layout]), target).backward()
            else:
                with torch.inference_mode():
                    model(inputs[layout])
            return time.perf_counter() - start

        since = (_busy_cpu_seconds(), time.process_time(), time.perf_counter())
        timings = {layout: [run(layout)] for layout in models}  # warm-up
        others = _other_cores(since)
        if not machine_busy(others):
            timings = {layout: [] for layout in models}
            for _ in range(repeats):
                for layout in models:
                    timings[layout].append(run(layout))
            others = _other_cores(since)
    return {**timings, "other_cores": others}

