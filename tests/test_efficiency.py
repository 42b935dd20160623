"""The efficiency benchmark: its memory counter, baselines, fast path and --quick run."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from refinenet.fastpath import EAGER_FP32, FastPath, apply_fast_path, autocast, default_fast_path, prepare_input
from refinenet.model import build_refinenet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.efficiency import benchmark, measure, report, speed  # noqa: E402
from benchmarks.efficiency.memory import SavedActivations  # noqa: E402


def test_saved_activation_counter_counts_a_known_case_exactly():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    x = torch.randn(1, 3, 8, 8)
    with SavedActivations(net) as saved:
        net(x)
    # The conv keeps its input (3*8*8 floats; its weight is a parameter, left out), the ReLU its output (4*8*8).
    assert saved.bytes == (3 * 8 * 8 + 4 * 8 * 8) * 4


def test_saved_activation_counter_counts_a_storage_once():
    x = torch.randn(10, requires_grad=True)
    with SavedActivations() as saved:
        y = x * x  # x saved twice (as both operands), one storage
        y.view(2, 5).exp()  # exp saves its output, a new storage
    assert saved.count == 3
    assert saved.bytes == 2 * 10 * 4


def test_saved_activation_counter_works_on_meta():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).to("meta")
    with SavedActivations(net) as saved:
        net(torch.empty(1, 3, 8, 8, device="meta"))
    assert saved.bytes == (3 * 8 * 8 + 4 * 8 * 8) * 4


@pytest.mark.parametrize("name, stride", [("Dilated-ResNet-101-OS8", 8), ("Dilated-ResNet-101-OS4", 4),
                                          ("FCN-32s-ResNet-101", 32), ("RefineNet-101", 4)])
def test_baselines_have_the_output_stride_of_fig_2(name, stride):
    counts = measure.analyse(name, 128)
    assert (counts["output_height"], counts["output_width"]) == (128 // stride, 128 // stride)
    assert counts["gflops_forward"] > 0 and counts["gflops_train_step"] > 2 * counts["gflops_forward"] * 0.9


def test_dilated_network_keeps_more_activations_than_refinenet():
    # The paper's claim (Sec. 2, Fig. 2), in counted bytes: true at output stride 4.
    refinenet = measure.analyse("RefineNet-101", 256)["train_saved_activation_bytes"]
    dilated4 = measure.analyse("Dilated-ResNet-101-OS4", 256)["train_saved_activation_bytes"]
    assert dilated4 > refinenet


@pytest.mark.parametrize(
    "fast", [default_fast_path("cpu"), FastPath(channels_last=True)], ids=["default", "channels_last"]
)
def test_cpu_fast_paths_match_eager_fp32(fast):
    assert isinstance(fast, FastPath) and not fast.compile
    assert default_fast_path("meta") == EAGER_FP32
    torch.manual_seed(0)
    model = build_refinenet(5, backbone="resnet50", features=32, top_features=64).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        reference = model(x)
        model = apply_fast_path(model, fast)
        with autocast(fast, "cpu"):
            out = model(prepare_input(x, fast)).float()
    assert out.is_contiguous(memory_format=torch.channels_last) or not fast.channels_last
    # fp32 channels_last is exact up to summation order; bf16 autocast keeps about 3 significant digits.
    tolerance = 5e-2 if fast.amp_dtype is not None else 1e-4
    assert float((out - reference).norm() / reference.norm()) < tolerance
    assert float((out.argmax(1) == reference.argmax(1)).float().mean()) > 0.9


def test_quick_benchmark_writes_csv_png_and_md(tmp_path):
    # One cheap model, in this process: the schema, the figure and the summary are what is checked here.
    assert benchmark.main(["--quick", "--in-process", "--out", str(tmp_path), "--models", "FCN-32s-ResNet-101",
                            "--sizes", "64", "--size", "64"]) == 0
    table = pd.read_csv(tmp_path / "efficiency.csv")
    expected = {"model", "input_size", "batch", "setting", "measurement", "value", "unit", "method", "dtype",
                "device", "torch", "code_version", "date"}
    assert expected <= set(table.columns)
    assert (table.device_type == "cpu").all() and table.value.notna().all()
    assert (table.profile == "bench-quick").all() and (table.data == "none (random weights and inputs)").all()
    measured = set(table.measurement)
    assert {"params", "gflops_forward", "train_saved_activation_bytes", "output_height", "inference_time",
            "train_step_time", "train_throughput", "time_multi_scale", "time_multi_scale_crf",
            "fp32_gemm_gflops_per_s", "train_step_gflops_per_s", "train_step_fraction_of_fp32_gemm",
            "inference_fraction_of_fp32_gemm"} <= measured
    # each timed step's share of the machine's fp32 GEMM rate = its counted FLOPs / time / the GEMM's rate
    gemm = table[table.measurement == "fp32_gemm_gflops_per_s"].value.iloc[0]
    step = table[(table.measurement == "train_step_time") & (table.setting == "channels_last")].iloc[0]
    flops = table[(table.measurement == "gflops_train_step") & (table.model == step.model)
                  & (table.input_size == step.input_size)].value.iloc[0]
    fraction = table[(table.measurement == "train_step_fraction_of_fp32_gemm") & (table.setting == "channels_last")
                     & (table.model == step.model) & (table.input_size == step.input_size)].value.iloc[0]
    assert fraction == pytest.approx(flops / step.value / gemm) and fraction > 0
    assert (tmp_path / "efficiency.png").stat().st_size > 1000
    summary = (tmp_path / "efficiency.md").read_text()
    assert "Device:" in summary and "fp32 GEMM" in summary
    assert "(../docs/protocol.md)" in summary


def test_default_fast_path_on_cuda_uses_channels_last_fp32_and_never_compiles():
    fast = default_fast_path("cuda")
    assert fast.channels_last and not fast.compile and fast.amp_dtype is None  # bf16 only with --amp bf16


@pytest.fixture
def small_refinenet(monkeypatch):
    """The speed comparison's model made small (narrow refine paths): the code path is the same."""
    monkeypatch.setattr(speed, "build_model", lambda name: build_refinenet(21, backbone="resnet50", features=16,
                                                                           top_features=16, pooling_blocks=1))


def test_quick_speed_run_compares_the_default_step_with_the_peer(tmp_path, small_refinenet):
    assert speed.main(["--quick", "--device", "cpu", "--out", str(tmp_path)]) == 0
    rows = pd.read_csv(tmp_path / "training_speed.csv").set_index("setting")
    assert list(rows.index) == ["default", "peer"]
    assert rows.loc["peer", "speed_vs_peer"] == 1.0
    default = rows.loc["default"]
    assert default.speed_vs_peer == pytest.approx(rows.loc["peer", "train_step_time_s"] / default.train_step_time_s)
    assert default.fast_path == "nchw+fp32 (REFINENET_CPU_LAYOUT=nchw)" and default.precision == "fp32"
    assert default.fraction_of_fp32_gemm == pytest.approx(
        default.gflops_train_step / default.train_step_time_s / default.fp32_gemm_gflops_per_s)
    assert (rows.device_type == "cpu").all() and rows.device.str.contains("threads").all()


def test_gpu_check_script_refuses_to_run_without_a_gpu():
    script = Path(benchmark.REPO) / "benchmarks" / "efficiency" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "RefineNet-50 RefineNet-101 RefineNet-152 --size 400" in script.read_text()
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the script would measure it")
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable, "SKIP_BENCH": "1"})
    assert done.returncode != 0 and "no CUDA device" in done.stderr


def test_bench_records_the_default_step_against_the_peer(small_refinenet):
    job = {"kind": "speed", "device": "cpu", "model": "RefineNet-50", "size": 32, "batch": 1, "warmup": 1,
           "repeats": 1, "settings": ["default", "peer"]}
    args = benchmark.parse_args(["--quick", "--models", "RefineNet-50", "--fast-path-size", "32"])
    rows = benchmark.Rows(args, {"device": "cpu", "device_type": "cpu"})
    for r in measure.run_job(job) + measure.run_job({"kind": "gemm", "device": "cpu", "n": 64}):
        rows.add(job["model"], 32, r.get("setting", "gemm"), r["measurement"], r["value"], r["unit"], r["method"],
                 r.get("dtype", "float32"))
    rows.add(job["model"], 32, "any", "gflops_train_step", 1.0, "GFLOPs", "meta device (shapes only)")
    benchmark.add_flop_rates(rows)
    table = pd.DataFrame(rows.rows)
    ratio = table[table.measurement == "speed_vs_peer"].set_index("setting").value
    assert set(ratio.index) == {"suite-default", "peer-eager-fp32"} and ratio["peer-eager-fp32"] == 1.0
    assert len(table[table.measurement == "train_step_fraction_of_fp32_gemm"]) == 2
    section = "\n".join(report._against_peer(table, args, "RefineNet-50"))
    assert "| suite-default | nchw+fp32 (REFINENET_CPU_LAYOUT=nchw) | fp32 |" in section and "fp32 GEMM" in section


@pytest.mark.parametrize("script", [benchmark, speed])
def test_bench_scripts_refuse_the_repositorys_results_from_a_dirty_tree(script, monkeypatch, tmp_path):
    from benchmarks import provenance

    target = provenance.REPO / "results" / "efficiency.csv"
    before = target.stat().st_mtime_ns if target.exists() else None
    monkeypatch.setattr(provenance, "git_state", lambda repo=None: ("abc1234-dirty", True, "d1ff"))
    with pytest.raises(SystemExit, match="uncommitted changes.*--allow-dirty"):
        script.main(["--quick", "--device", "cpu", "--out", str(provenance.REPO / "results")])
    assert (target.stat().st_mtime_ns if target.exists() else None) == before
    # results written from a clean tree carry the version without the repository's own outputs' changes
    monkeypatch.setattr(provenance, "git_state", lambda repo=None: ("abc1234", False, None))
    assert provenance.results_code_version(provenance.REPO / "results", allow_dirty=False) == "abc1234"


def test_report_blames_contention_only_on_load_present_before_the_benchmark(monkeypatch):
    import argparse

    monkeypatch.setattr(report.os, "cpu_count", lambda: 2)
    args = argparse.Namespace(batch=1, quick=False, repeats=3, warmup=1, sizes=[256], timed_sizes=[256])
    common = {"device": "test CPU", "device_type": "cpu", "torch": "2.x", "code_version": "abc", "date": "today"}

    def intro(start: float, end: float) -> str:
        notes = {"minutes": 1.0, "load_average": [start, start, start], "load_average_end": [end, end, end]}
        return " ".join(report._introduction(args, common, notes, ""))

    assert "contention" not in intro(0.3, 2.4)  # the end's load is the benchmark's own two threads
    assert "contention" in intro(1.6, 2.4)
