"""Fast paths: the per-machine CPU layout (fake timers, no timed assertions), the precision policy,
what runs record, and dropout that does not depend on the memory format."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from refinenet import cpu_layout, data
from refinenet.checkpoint import load_checkpoint
from refinenet.cli import build_parser
from refinenet.cli_options import from_args
from refinenet.config import EvalConfig, TrainConfig
from refinenet.evaluate import evaluate
from refinenet.fastpath import FastPath, choose_fast_path, default_fast_path, precision_name
from refinenet.model import LayoutIndependentDropout, build_refinenet
from refinenet.train import train


@pytest.fixture
def layout_cache(tmp_path, monkeypatch):
    """An empty cache in tmp_path, no forced layout, no decisions remembered from other tests."""
    monkeypatch.setenv(cpu_layout.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(cpu_layout.LAYOUT_ENV, raising=False)
    monkeypatch.setattr(cpu_layout, "_DECIDED", {})
    return tmp_path / "cache" / "fastpath.json"


class FakeTimer:
    """Seconds per step for each layout; counts how often it was asked."""

    def __init__(self, nchw: float, channels_last: float, other_cores: float = 0.0):
        self.nchw, self.channels_last, self.other_cores, self.calls = nchw, channels_last, other_cores, []

    def __call__(self, step: str) -> dict:
        self.calls.append(step)
        return {"nchw": [self.nchw] * 3, "channels_last": [self.channels_last] * 3, "other_cores": self.other_cores}


@pytest.mark.parametrize("channels_last_seconds, picked", [(0.80, True), (0.95, True), (0.97, False), (1.0, False),
                                                          (1.3, False)])
def test_channels_last_is_picked_only_when_faster_by_the_margin(layout_cache, channels_last_seconds, picked):
    choice = cpu_layout.pick_cpu_layout(False, "train", timer=FakeTimer(1.0, channels_last_seconds), margin=0.05)
    assert choice.channels_last is picked
    assert "timed" in choice.reason and f"{1.0 / channels_last_seconds:.2f}x" in choice.reason


def test_a_cached_decision_is_not_timed_again(layout_cache):
    timer = FakeTimer(1.0, 0.5)
    first = cpu_layout.pick_cpu_layout(False, "train", timer=timer)
    cpu_layout._DECIDED.clear()  # a new process: only the file remembers
    again = cpu_layout.pick_cpu_layout(False, "train", timer=timer)
    assert first.channels_last and again.channels_last and timer.calls == ["train"]
    assert "cached" in again.reason
    entry = json.loads(layout_cache.read_text())[cpu_layout.cache_key(False, "train")]
    assert entry["speedup"] == pytest.approx(2.0) and entry["seconds"]["nchw"] == [1.0] * 3
    cpu_layout.pick_cpu_layout(False, "inference", timer=timer)  # another workload, another entry
    assert timer.calls == ["train", "inference"]


def test_cache_key_names_the_cpu_torch_threads_and_batchnorm(layout_cache, monkeypatch):
    keys = {cpu_layout.cache_key(False, "train")}
    monkeypatch.setattr(cpu_layout, "cpu_model", lambda: "Some Other CPU")
    keys.add(cpu_layout.cache_key(False, "train"))
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    keys.add(cpu_layout.cache_key(False, "train"))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 97)
    keys.add(cpu_layout.cache_key(False, "train"))
    keys.add(cpu_layout.cache_key(True, "train"))
    keys.add(cpu_layout.cache_key(False, "inference"))
    assert len(keys) == 6
    assert {"Some Other CPU", "torch 9.9.9", "97 threads", "batch norm frozen"} <= set(
        cpu_layout.cache_key(False, "train").split(" | "))
    # another machine does not reuse this one's decision
    timer = FakeTimer(1.0, 0.5)
    cpu_layout.pick_cpu_layout(False, "train", timer=timer)
    monkeypatch.setattr(cpu_layout, "cpu_model", lambda: "A Third CPU")
    cpu_layout.pick_cpu_layout(False, "train", timer=timer)
    assert len(timer.calls) == 2 and len(json.loads(layout_cache.read_text())) == 2


def test_trainable_batchnorm_keeps_nchw_without_timing(layout_cache):
    timer = FakeTimer(1.0, 0.1)
    choice = cpu_layout.pick_cpu_layout(True, "train", timer=timer)
    assert not choice.channels_last and timer.calls == [] and not layout_cache.exists()


def test_a_busy_machine_keeps_nchw_and_caches_nothing(layout_cache):
    timer = FakeTimer(1.0, 0.5, other_cores=1000.0)
    choice = cpu_layout.pick_cpu_layout(False, "train", timer=timer)
    assert not choice.channels_last and "busy" in choice.reason and not layout_cache.exists()
    cpu_layout.pick_cpu_layout(False, "train", timer=timer)  # the same process does not time twice
    assert timer.calls == ["train"]


def test_a_damaged_cache_is_timed_again(layout_cache):
    layout_cache.parent.mkdir(parents=True)
    layout_cache.write_text("{not json")
    timer = FakeTimer(1.0, 0.5)
    assert cpu_layout.pick_cpu_layout(False, "train", timer=timer).channels_last
    assert timer.calls == ["train"] and cpu_layout.cache_key(False, "train") in json.loads(layout_cache.read_text())


def test_switches_and_the_environment_override_the_timing(layout_cache, monkeypatch):
    timer = FakeTimer(1.0, 0.5)
    cpu_layout.pick_cpu_layout(False, "train", timer=timer)  # cached: channels_last
    fast, label = choose_fast_path("cpu", channels_last=False)
    assert not fast.channels_last and "--no-channels-last" in label
    fast, label = choose_fast_path("cpu", enabled=False)
    assert fast == FastPath() and "--no-fast-path" in label
    fast, label = choose_fast_path("cpu")
    assert fast.channels_last and label == "channels_last+fp32 (picked: 2.00x over nchw, cached)"
    monkeypatch.setenv(cpu_layout.LAYOUT_ENV, "nchw")
    assert not choose_fast_path("cpu")[0].channels_last
    assert choose_fast_path("cpu", channels_last=True)[0].channels_last
    monkeypatch.setenv(cpu_layout.LAYOUT_ENV, "sideways")
    with pytest.raises(ValueError, match="REFINENET_CPU_LAYOUT"):
        choose_fast_path("cpu")


def test_cuda_default_is_fp32_channels_last_and_bf16_only_when_asked():
    fast, label = choose_fast_path("cuda")
    assert fast == FastPath(channels_last=True) == default_fast_path("cuda") and fast.amp_dtype is None
    assert label == "channels_last+fp32 (CUDA default)"
    assert choose_fast_path("cuda", amp="bf16")[0].amp_dtype == torch.bfloat16
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False  # PyTorch's default
        with torch.backends.cudnn.flags(allow_tf32=True):  # PyTorch's default
            assert precision_name(None, "cuda") == "fp32 (tf32 convs)"
        with torch.backends.cudnn.flags(allow_tf32=False):
            assert precision_name(None, "cuda") == "fp32"
            torch.backends.cuda.matmul.allow_tf32 = True
            assert precision_name(None, "cuda") == "fp32 (tf32 matmuls)"
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
    assert precision_name(None, "cpu") == "fp32"
    assert precision_name(torch.bfloat16, "cuda") == "bf16" and precision_name(torch.float16, "cpu") == "fp16"


def test_command_line_precision_and_layout_switches():
    parser = build_parser()
    args = ["--dataset", "voc2012", "--data-root", "r", "--out", "o"]
    plain = from_args(TrainConfig, parser.parse_args(["train", *args]))
    assert plain.amp is None and plain.channels_last is None  # the recipe's fp32; the device's layout
    forced = from_args(TrainConfig, parser.parse_args(["train", *args, "--amp", "bf16", "--no-channels-last"]))
    assert forced.amp == "bf16" and forced.channels_last is False
    evaluation = from_args(EvalConfig, parser.parse_args(["evaluate", "--checkpoint", "c", "--dataset", "voc2012",
                                                          "--data-root", "r", "--amp", "bf16", "--channels-last"]))
    assert evaluation.amp == "bf16" and evaluation.channels_last is True


def test_runs_record_precision_and_fast_path(tmp_path):
    root = tmp_path / "voc"
    data.write_standin("voc2012", root, train=2, val=2, size=(48, 64), seed=0)
    out = tmp_path / "run"
    checkpoint = train(TrainConfig("voc2012", root, out, profile="smoke", backbone="resnet50", crop_size=32,
                                   iterations=1, amp="bf16", workers=0, progress=False))
    config = json.loads((out / "config.json").read_text())
    assert config["precision"] == "bf16" and config["amp"] == "bf16" and config["channels_last"] is False
    # the smoke profile trains batch norm; the test suite forces NCHW (tests/conftest.py)
    assert config["fast_path"] == "nchw+bfloat16 (REFINENET_CPU_LAYOUT=nchw)"
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {k: log[0][k] for k in ("iteration", "fast_path", "precision")} == {
        "iteration": 0, "fast_path": config["fast_path"], "precision": "bf16"}
    # the session's first line also says what the process ran with (refinenet/train_log.py, issue 22)
    assert log[0]["workers"] == 0 and log[0]["torch_threads"] >= 1 and log[0]["slurm_job_id"] is None
    stored = load_checkpoint(checkpoint)["train_config"]
    assert (stored["precision"], stored["fast_path"]) == ("bf16", config["fast_path"])
    result = evaluate(EvalConfig(checkpoint, "voc2012", root, out=tmp_path / "eval", workers=0, progress=False))
    assert result["precision"] == "fp32" and result["fast_path"].startswith("nchw+fp32")
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["precision"] == "fp32"
    bf16 = evaluate(EvalConfig(checkpoint, "voc2012", root, amp="bf16", channels_last=True, workers=0,
                               progress=False))
    assert bf16["precision"] == "bf16" and bf16["fast_path"] == "channels_last+bfloat16 (--channels-last)"


def test_dropout_mask_does_not_depend_on_the_memory_format():
    x = torch.randn(2, 16, 5, 7)
    dropout = LayoutIndependentDropout(0.5).train()
    torch.manual_seed(3)
    reference = F.dropout(x, 0.5, training=True)  # nn.Dropout on an NCHW tensor
    torch.manual_seed(3)
    nchw = dropout(x)
    torch.manual_seed(3)
    channels_last = dropout(x.contiguous(memory_format=torch.channels_last))
    assert torch.equal(nchw, reference) and torch.equal(channels_last, reference)
    assert channels_last.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(dropout.eval()(x), x)


def test_frozen_batchnorm_training_step_agrees_across_layouts():
    # With dropout on: nn.Dropout would drop other units under channels_last (gradients ~80% apart).
    torch.manual_seed(0)
    model = build_refinenet(5, backbone="resnet50", features=32, top_features=64, freeze_batchnorm=True)
    x, target = torch.randn(2, 3, 64, 64), torch.randint(0, 5, (2, 64, 64))

    def gradients(channels_last: bool) -> torch.Tensor:
        net = copy.deepcopy(model).train()
        inputs = x
        if channels_last:
            net, inputs = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        torch.manual_seed(1)
        F.cross_entropy(net(inputs), target).backward()
        return torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])

    nchw, channels_last = gradients(False), gradients(True)
    assert float((channels_last - nchw).norm() / nchw.norm()) < 1e-2
