"""DistributedDataParallel on CPU: 2 gloo processes started by torchrun train and evaluate."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from refinenet import data
from refinenet.config import EvalConfig
from refinenet.evaluate import evaluate


def _torchrun(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "refinenet", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def test_two_process_gloo_training_and_evaluation(tmp_path):
    root = tmp_path / "voc"
    data.write_standin("voc2012", root, train=4, val=3, size=(40, 48), seed=0)
    run = tmp_path / "run"
    done = _torchrun("train", "--dataset", "voc2012", "--data-root", str(root), "--out", str(run), "--profile",
                     "smoke", "--backbone", "resnet50", "--crop-size", "40", "--iterations", "2", "--workers", "0",
                     "--no-progress", "--val-split", "val", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2
    steps = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert [s["iteration"] for s in steps] == [1, 2]  # rank 0 alone writes the log
    # the confusion matrices of both processes are summed: same scores as one process
    done = _torchrun("evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--dataset", "voc2012", "--data-root",
                     str(root), "--out", str(tmp_path / "eval"), "--workers", "0", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    distributed = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    single = evaluate(EvalConfig(run / "checkpoint.pt", "voc2012", root, workers=0, progress=False))
    assert distributed["pixels"] == single["pixels"]
    assert distributed["pixel_acc"] == pytest.approx(single["pixel_acc"])
