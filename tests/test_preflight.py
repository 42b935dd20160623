"""Pre-flight check and long-run robustness: bad files are listed before training starts, a file that
turns bad mid-run ends the run with one line naming it and the checkpoint kept; stale temp files go."""

from __future__ import annotations

import os

import numpy as np
import pytest

from refinenet import data
from refinenet import preflight as preflight_module
from refinenet.atomic import save_png
from refinenet.checkpoint import load_checkpoint
from refinenet.cli import main
from refinenet.config import TrainConfig
from refinenet.preflight import PreflightError, check_split
from refinenet.train import train
from refinenet.train_data import TrainingDataError, data_error_text

VOC = "VOCdevkit/VOC2012"


@pytest.fixture
def voc_root(tmp_path):
    root = tmp_path / "voc"
    data.write_standin("voc2012", root, train=4, val=2, size=(48, 64), seed=0)
    return root


def train_ids(root):
    return (root / VOC / "ImageSets/Segmentation/train.txt").read_text().split()


def break_three_files(root):
    """A truncated image, a label of the wrong size and a label holding a value VOC does not define."""
    a, b, c = train_ids(root)[:3]
    (root / VOC / "JPEGImages" / f"{a}.jpg").write_bytes(b"\xff\xd8not a jpeg")
    save_png(root / VOC / "SegmentationClass" / f"{b}.png", np.zeros((10, 10), np.uint8))
    save_png(root / VOC / "SegmentationClass" / f"{c}.png", np.full((48, 64), 100, np.uint8))
    return a, b, c


def test_preflight_lists_every_unusable_file_in_one_message(voc_root, tmp_path):
    a, b, c = break_three_files(voc_root)
    with pytest.raises(PreflightError) as info:
        check_split(data.load_dataset("voc2012", voc_root, "train"), cache_dir=tmp_path / "cache", progress=False)
    message = str(info.value)
    assert "3 of 4 items" in message
    assert f"{a}.jpg" in message and f"{b}.png" in message and f"{c}.png" in message
    assert "[100]" in message  # the undefined label value
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())  # no stamp


def test_a_split_that_passed_is_read_once_until_a_file_changes(voc_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    split = data.load_dataset("voc2012", voc_root, "train")
    assert check_split(split, cache_dir=cache, progress=False) is True
    assert len(list(cache.iterdir())) == 1 and not list(voc_root.rglob("*preflight*"))
    reads = []
    monkeypatch.setattr(preflight_module, "pair_problem", lambda ds, i: reads.append(i))
    assert check_split(split, cache_dir=cache, progress=False) is False and reads == []
    image = voc_root / VOC / "JPEGImages" / f"{train_ids(voc_root)[0]}.jpg"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    assert check_split(split, cache_dir=cache, progress=False) is True and len(reads) == 4


def test_train_command_stops_before_training_and_lists_the_bad_files(voc_root, tmp_path, capsys):
    a, b, c = break_three_files(voc_root)
    args = ["train", "--dataset", "voc2012", "--data-root", str(voc_root), "--out", str(tmp_path / "run"),
            "--profile", "smoke", "--backbone", "resnet50", "--iterations", "2", "--workers", "0", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: pre-flight check: 3 of 4 items") and "Traceback" not in err
    assert all(name in err for name in (f"{a}.jpg", f"{b}.png", f"{c}.png"))
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_file_going_bad_mid_run_ends_it_naming_the_file_and_the_checkpoint_kept(voc_root, tmp_path):
    image = voc_root / VOC / "JPEGImages" / f"{train_ids(voc_root)[0]}.jpg"
    run = tmp_path / "run"
    run.mkdir()
    stale = run / ".checkpoint.pt.abc123.tmp"  # left by an earlier process killed while writing
    stale.write_bytes(b"half a checkpoint")
    other = run / ".notes.txt.x.tmp"  # not the checkpoint's: left alone
    other.write_text("")

    def corrupt_after_two(iteration):
        if iteration == 2:
            image.write_bytes(b"broken")

    cfg = TrainConfig(dataset="voc2012", data_root=voc_root, out=run, profile="smoke", backbone="resnet50",
                      crop_size=32, iterations=4, checkpoint_every=2, workers=0, progress=False)
    with pytest.raises(TrainingDataError) as info:
        train(cfg, on_iteration=corrupt_after_two)
    message = str(info.value)
    assert message.startswith(f"cannot read image {image}")
    assert f"the last good checkpoint {tmp_path / 'run' / 'checkpoint.pt'} (iteration 2) is kept" in message
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["iteration"] == 2
    assert not stale.exists() and other.exists()


def test_an_error_from_a_loader_worker_is_one_line_without_traceback(voc_root, tmp_path, capsys):
    image = voc_root / VOC / "JPEGImages" / f"{train_ids(voc_root)[1]}.jpg"
    image.write_bytes(b"broken")
    args = ["train", "--dataset", "voc2012", "--data-root", str(voc_root), "--out", str(tmp_path / "run"),
            "--profile", "smoke", "--backbone", "resnet50", "--crop-size", "32", "--iterations", "2",
            "--workers", "1", "--no-progress", "--no-preflight"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot read image {image}") and "Traceback" not in err and "\n" not in err
    assert err.endswith("training stopped, no checkpoint had been written yet")


def test_worker_traceback_text_is_reduced_to_the_original_error():
    wrapped = OSError("Caught OSError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                      '  File "x.py", line 1, in f\nOSError: cannot read image /d/a.jpg: truncated')
    assert data_error_text(wrapped) == "cannot read image /d/a.jpg: truncated"
    assert data_error_text(ValueError("label /d/b.png holds values [99]")) == "label /d/b.png holds values [99]"
