"""How long converting one of the authors' models takes, and how much memory it needs (`nox -s bench-convert`).

The target (issue 19): a full-size RefineNet-152 file (about 500 MB) converts in under 60 s on 2 cores with a
peak resident memory under 3x the file's size. The authors' files cannot be shipped, so the file is written
in their exact container by the test suite's writer (tests/matconvnet_files.py: MATLAB v7.3, `net_config`
as cnn_save_model.m saves it) with random values, then `refinenet convert` runs in a fresh process whose
wall time and peak resident set size (getrusage of the child) are measured. Writes results/conversion.csv
and .md: one tidy row per measurement, with the code version, the CPU and the thread count.

    python -m benchmarks.efficiency.conversion [--depth 152] [--repeats 2] [--out results] [--allow-dirty]
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from benchmarks.provenance import REPO, add_allow_dirty_option, code_version_or_exit, cpu_name
from refinenet.atomic import write_text_atomic

sys.path.insert(0, str(REPO / "tests"))  # the test suite's writer of files in the authors' format

TARGET_SECONDS = 60.0
TARGET_MEMORY_RATIO = 3.0


def measure_once(src: Path, out: Path) -> dict:
    """Convert `src` in a fresh process: wall seconds and that process's peak resident memory (wait4)."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "refinenet.cli", "convert", str(src), "--out", str(out)],
                                 cwd=REPO, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0), stderr.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"error: converting {src} failed: {stderr.read().strip()}")
        return {"seconds": seconds, "peak_bytes": usage.ru_maxrss * 1024, "output": stdout.read().strip()}


def markdown(frame: pd.DataFrame) -> str:
    first = frame.iloc[0]
    lines = ["# Converting the authors' MatConvNet models", "",
             f"A full-size RefineNet-{first['depth']} file in the authors' container ({first['file_mb']:.0f} MB, "
             f"MATLAB v7.3, random values), converted by `refinenet convert` in a fresh process on {first['device']} "
             f"(code {first['code_version']}, {first['measured_at'][:10]}).", "",
             "| repeat | seconds | target | peak memory (MB) | peak / file size | target |",
             "|---|---|---|---|---|---|"]
    for r in frame.itertuples():
        lines.append(f"| {r.repeat} | {r.seconds:.1f} | < {TARGET_SECONDS:.0f} | {r.peak_mb:.0f} | "
                     f"{r.memory_ratio:.2f} | < {TARGET_MEMORY_RATIO:.0f} |")
    worst_s, worst_m = frame["seconds"].max(), frame["memory_ratio"].max()
    met = lambda ok: "met" if ok else "missed"
    lines += ["", f"Time: slowest repeat {worst_s:.1f} s (target < {TARGET_SECONDS:.0f} s: "
              f"{met(worst_s < TARGET_SECONDS)}). Memory: largest peak {worst_m:.2f}x the file (target < "
              f"{TARGET_MEMORY_RATIO:.0f}x: {met(worst_m < TARGET_MEMORY_RATIO)}). Load average (1 min) when the "
              f"run started: {first['load_average']:.2f} on {first['cpus']} CPUs; other work on the machine "
              f"lengthens the times, not the memory.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.efficiency.conversion", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=152, choices=(101, 152))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "results")
    add_allow_dirty_option(parser)
    args = parser.parse_args(argv)
    import matconvnet_files

    version = code_version_or_exit(args.out, args.allow_dirty)
    load, cpus = os.getloadavg()[0], os.cpu_count()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"refinenet_res{args.depth}_voc2012.mat"
        print(f"writing a full-size RefineNet-{args.depth} file in the authors' format ...", flush=True)
        matconvnet_files.write_refinenet_mat(src, depth=args.depth, num_classes=22, pooling_blocks=4)
        size = src.stat().st_size
        for repeat in range(args.repeats):
            result = measure_once(src, Path(tmp) / "converted.pt")
            print(f"repeat {repeat}: {result['seconds']:.1f} s, peak {result['peak_bytes'] / 1e6:.0f} MB "
                  f"({result['peak_bytes'] / size:.2f}x the file)\n  {result['output']}", flush=True)
            rows.append({"profile": "bench-convert", "data": "standin (random values in the authors' container)",
                         "depth": args.depth, "repeat": repeat, "file_mb": size / 1e6, "seconds": result["seconds"],
                         "peak_mb": result["peak_bytes"] / 1e6, "memory_ratio": result["peak_bytes"] / size,
                         "device": f"cpu ({cpu_name()}, {torch.get_num_threads()} threads)", "torch": torch.__version__,
                         "code_version": version, "load_average": load, "cpus": cpus,
                         "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
    frame = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "conversion.csv", frame.to_csv(index=False))
    write_text_atomic(args.out / "conversion.md", markdown(frame))
    print(f"wrote {args.out / 'conversion.csv'} and conversion.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
