"""Training engine: loss goes down, exact resume, NaN guard, logs and config, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from refinenet import data
from refinenet import train as train_module
from refinenet.checkpoint import CheckpointError, load_checkpoint
from refinenet.cli import main
from refinenet.config import TrainConfig, resolve
from refinenet.recipe import RECIPES
from refinenet.train import lr_factor, train
from refinenet.train_data import calibrate_batchnorm, calibration_batches
from refinenet.train_state import NonFiniteLossError


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    data.write_standin("voc2012", root, train=4, val=2, size=(48, 64), seed=0)
    return root


class Killed(Exception):
    """Stands for the process being killed."""


def kill_after(iteration: int):
    """An `on_iteration` hook that stops training after `iteration` as a kill would (after its checkpoint)."""

    def hook(done: int) -> None:
        if done == iteration:
            raise Killed

    return hook


def nan_loss_at(monkeypatch, iteration: int) -> None:
    """Make the training loss NaN at `iteration` (one micro-batch per step)."""
    real, calls = train_module.segmentation_loss, []

    def loss(*args, **kwargs):
        calls.append(None)
        value = real(*args, **kwargs)
        return value * float("nan") if len(calls) == iteration else value

    monkeypatch.setattr(train_module, "segmentation_loss", loss)


def smoke(voc_root, out, **overrides) -> TrainConfig:
    options = dict(dataset="voc2012", data_root=voc_root, out=out, profile="smoke", backbone="resnet50",
                   crop_size=32, workers=0, progress=False)
    options.update(overrides)
    return TrainConfig(**options)


def test_recipe_values_match_the_released_code():
    paper = RECIPES["paper"]
    assert (paper.lr, paper.backbone_lr_mult, paper.momentum, paper.weight_decay) == (5e-4, 0.1, 0.9, 5e-4)
    assert (paper.batch_size, paper.crop_size, paper.cityscapes_crop_size) == (1, 400, 600)
    assert paper.lr_schedule == "step" and paper.lr_drop_factor == 0.1 and paper.freeze_batchnorm
    assert paper.scale_range == (0.7, 1.3) and paper.hflip
    assert resolve(TrainConfig("cityscapes", "x", "y")).crop_size == 600
    assert resolve(TrainConfig("voc2012", "x", "y")).pooling_blocks == 4


def test_lr_schedules():
    step = resolve(TrainConfig("voc2012", "x", "y", lr_schedule="step", lr_drop_at=0.5))
    assert [lr_factor(i, step, 10) for i in (0, 4, 5, 9)] == [1.0, 1.0, 0.1, 0.1]
    poly = resolve(TrainConfig("voc2012", "x", "y", lr_schedule="poly"))
    assert lr_factor(0, poly, 10) == 1.0 and 0 < lr_factor(9, poly, 10) < 0.2


def test_training_lowers_the_loss_and_writes_logs(voc_root, tmp_path):
    path = train(smoke(voc_root, tmp_path / "run", iterations=10, lr_schedule="constant", lr=1e-3, val_split="val"))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "loss" in r]
    assert [r["iteration"] for r in steps] == list(range(1, 11))
    assert {"loss", "lr", "images_per_s", "eta_s"} <= set(steps[0])
    # the first step starts near ln(21) = 3.04 (random init); dropout and random crops make single
    # steps noisy, so compare with the mean of the last five. Measured drops (AMD EPYC): 1.35, 1.09, 1.34
    # and 1.15 for seeds 0-3; the stand-in recipe before batch-norm calibration diverged here on that CPU.
    assert sum(r["loss"] for r in steps[-5:]) / 5 < steps[0]["loss"] - 0.5, [r["loss"] for r in steps]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data_kind"] == "standin" and config["lr"] == 1e-3
    assert config["model_config"]["backbone"] == "resnet50"
    ckpt = load_checkpoint(path)
    assert ckpt["iteration"] == 10 and ckpt["finished"] and ckpt["dataset_info"]["name"] == "voc2012"
    assert json.loads((tmp_path / "run" / "val" / "metrics.json").read_text())["split"] == "val"


def test_killed_and_resumed_run_ends_with_identical_weights(voc_root, tmp_path):
    options = dict(iterations=6, checkpoint_every=3)
    straight = load_checkpoint(train(smoke(voc_root, tmp_path / "a", **options)))
    with pytest.raises(Killed):
        train(smoke(voc_root, tmp_path / "b", **options), on_iteration=kill_after(3))
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["iteration"] == 3
    resumed = load_checkpoint(train(smoke(voc_root, tmp_path / "b", resume=True, **options)))
    assert resumed["iteration"] == straight["iteration"] == 6
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    for key, state in straight["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], resumed["optimizer"]["state"][key]["momentum_buffer"])


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(voc_root, tmp_path, monkeypatch):
    nan_loss_at(monkeypatch, 3)
    with pytest.raises(NonFiniteLossError, match="iteration 3"):
        train(smoke(voc_root, tmp_path / "run", iterations=6, checkpoint_every=2))
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["iteration"] == 2
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())


def test_cli_reports_non_finite_loss(voc_root, tmp_path, capsys, monkeypatch):
    nan_loss_at(monkeypatch, 1)
    args = ["train", "--dataset", "voc2012", "--data-root", str(voc_root), "--out", str(tmp_path / "r"),
            "--profile", "smoke", "--backbone", "resnet50", "--crop-size", "32", "--iterations", "2",
            "--workers", "0", "--no-progress"]
    assert main(args) == 1
    assert "loss is nan at iteration 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--crop-size", "0"], "crop size must be positive"),
        (["--resume"], "no checkpoint"),
        (["--lr", "-1"], "learning rate must be positive"),
    ],
)
def test_cli_bad_arguments(voc_root, tmp_path, capsys, extra, message):
    args = ["train", "--dataset", "voc2012", "--data-root", str(voc_root), "--out", str(tmp_path / "r"),
            "--profile", "smoke", "--backbone", "resnet50", "--workers", "0", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_unknown_dataset_and_missing_root(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--dataset", "nope", "--data-root", str(tmp_path), "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert main(["train", "--dataset", "voc2012", "--data-root", str(tmp_path / "missing"), "--out",
                 str(tmp_path / "r"), "--profile", "smoke", "--backbone", "resnet50"]) == 2
    assert "missing" in capsys.readouterr().err


def test_existing_checkpoint_needs_resume(voc_root, tmp_path):
    train(smoke(voc_root, tmp_path / "run", iterations=1))
    with pytest.raises(CheckpointError, match="--resume"):
        train(smoke(voc_root, tmp_path / "run", iterations=1))


def test_zero_init_residual_makes_every_bottleneck_start_as_the_identity():
    from refinenet.model import build_refinenet

    model = build_refinenet(5, backbone="resnet50")
    blocks = [m for m in model.modules() if isinstance(m, __import__("torchvision").models.resnet.Bottleneck)]
    assert len(blocks) == 16 and not all(torch.all(b.bn3.weight == 0) for b in blocks)
    train_module.zero_init_residual(model)
    assert all(torch.all(b.bn3.weight == 0) for b in blocks)
    # the stand-in profiles (random init) use it with batch-norm calibration; the paper's fine-tuning does not
    standin = resolve(TrainConfig("voc2012", "x", "y", profile="standin"))
    paper = resolve(TrainConfig("voc2012", "x", "y", profile="paper"))
    assert standin.zero_init_residual and standin.bn_calibration_batches > 0 and standin.freeze_batchnorm
    assert not paper.zero_init_residual and paper.bn_calibration_batches == 0


class ConvNorm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.norm = torch.nn.BatchNorm2d(4)
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x, upsample=True):
        return self.drop(self.norm(self.conv(x)))


def test_batchnorm_calibration_sets_running_statistics_to_the_mean_over_batches():
    torch.manual_seed(0)
    model = ConvNorm().train()
    batches = [torch.randn(2, 3, 8, 8) * s + s for s in (1.0, 3.0)]
    with torch.no_grad():
        features = [model.conv(b) for b in batches]
    expected_mean = torch.stack([f.mean((0, 2, 3)) for f in features]).mean(0)
    expected_var = torch.stack([f.transpose(0, 1).flatten(1).var(1) for f in features]).mean(0)
    calibrate_batchnorm(model, iter(batches))
    torch.testing.assert_close(model.norm.running_mean, expected_mean)
    torch.testing.assert_close(model.norm.running_var, expected_var)
    assert model.training and model.norm.momentum == 0.1  # mode and momentum restored
    with pytest.raises(ValueError, match="no batch"):
        calibrate_batchnorm(model, iter([]))


def test_batchnorm_calibration_batches_leave_the_global_rng_alone(voc_root, tmp_path):
    # dropout draws from the global RNG, so a calibration that consumed it would change training
    run = train_module.build(resolve(smoke(voc_root, tmp_path / "run", bn_calibration_batches=2, batch_size=2)))
    before = torch.get_rng_state()
    batches = list(calibration_batches(run))
    assert len(batches) == 2 and batches[0].shape[0] == 2
    assert torch.equal(torch.get_rng_state(), before)


def test_standin_iterations_can_differ_per_dataset_and_an_explicit_value_wins():
    standin = RECIPES["standin"]
    assert resolve(TrainConfig("nyudv2", "x", "y", profile="standin")).iterations == standin.iterations_for("nyudv2")
    assert resolve(TrainConfig("ade20k", "x", "y", profile="standin")).iterations == standin.iterations
    assert resolve(TrainConfig("nyudv2", "x", "y", profile="standin", iterations=7)).iterations == 7
    assert resolve(TrainConfig("nyudv2", "x", "y", profile="smoke")).iterations == RECIPES["smoke"].iterations
