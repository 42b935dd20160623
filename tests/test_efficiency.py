"""The efficiency benchmark: its memory counter, baselines, fast path and --quick run."""

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from refinenet.fastpath import EAGER_FP32, FastPath, apply_fast_path, autocast, default_fast_path, prepare_input
from refinenet.model import build_refinenet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import efficiency, efficiency_measure  # noqa: E402
from benchmarks.memory import SavedActivations  # noqa: E402


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
    counts = efficiency_measure.analyse(name, 128)
    assert (counts["output_height"], counts["output_width"]) == (128 // stride, 128 // stride)
    assert counts["gflops_forward"] > 0 and counts["gflops_train_step"] > 2 * counts["gflops_forward"] * 0.9


def test_dilated_network_keeps_more_activations_than_refinenet():
    # The paper's claim (Sec. 2, Fig. 2), in counted bytes: true at output stride 4.
    refinenet = efficiency_measure.analyse("RefineNet-101", 256)["train_saved_activation_bytes"]
    dilated4 = efficiency_measure.analyse("Dilated-ResNet-101-OS4", 256)["train_saved_activation_bytes"]
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
    assert efficiency.main(["--quick", "--in-process", "--out", str(tmp_path), "--models", "FCN-32s-ResNet-101",
                            "--sizes", "64", "--size", "64"]) == 0
    table = pd.read_csv(tmp_path / "efficiency.csv")
    expected = {"model", "input_size", "batch", "setting", "measurement", "value", "unit", "method", "dtype",
                "device", "torch", "code_version", "date"}
    assert expected <= set(table.columns)
    assert (table.device_type == "cpu").all() and table.value.notna().all()
    measured = set(table.measurement)
    assert {"params", "gflops_forward", "train_saved_activation_bytes", "output_height", "inference_time",
            "train_step_time", "train_throughput", "time_multi_scale", "time_multi_scale_crf"} <= measured
    assert (tmp_path / "efficiency.png").stat().st_size > 1000
    assert "Device:" in (tmp_path / "efficiency.md").read_text()


def test_default_fast_path_on_cuda_uses_channels_last_fp32_and_never_compiles():
    fast = default_fast_path("cuda")
    assert fast.channels_last and not fast.compile and fast.amp_dtype is None  # bf16 only with --amp bf16
