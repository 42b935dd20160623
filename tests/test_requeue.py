"""Training under a scheduler: a stop signal checkpoints at the step's end, a restart that repeats logged
iterations is marked in log.jsonl, SLURM's CPU grant sets the threads, every session's time counts."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import torch

from benchmarks.tables import store
from refinenet import data
from refinenet.checkpoint import load_checkpoint
from refinenet.cli import main
from refinenet.config import TrainConfig
from refinenet.train import fit_cpu_grant, train
from refinenet.train_stop import TrainingStopped


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    data.write_standin("voc2012", root, train=4, val=2, size=(48, 64), seed=0)
    return root


def smoke(voc_root, out, **overrides) -> TrainConfig:
    options = dict(dataset="voc2012", data_root=voc_root, out=out, profile="smoke", backbone="resnet50",
                   crop_size=32, workers=0, progress=False)
    return TrainConfig(**{**options, **overrides})


def signal_after(iteration: int, signum: int):
    def hook(done: int) -> None:
        if done == iteration:
            os.kill(os.getpid(), signum)
    return hook


def log_lines(out) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR2])
def test_stop_signal_checkpoints_at_the_next_step_end_and_the_resumed_run_is_identical(voc_root, tmp_path, signum):
    options = dict(iterations=6, checkpoint_every=100)  # no periodic checkpoint before the end
    straight = load_checkpoint(train(smoke(voc_root, tmp_path / "a", **options)))
    handler = signal.getsignal(signum)
    with pytest.raises(TrainingStopped) as stopped:
        train(smoke(voc_root, tmp_path / "b", **options), on_iteration=signal_after(2, signum))
    assert signal.getsignal(signum) is handler  # the loop's handler is gone with the loop
    # the signal came after step 2's checkpoint check: step 3 ends, checkpoints and stops
    assert stopped.value.iteration == 3 and stopped.value.signum == signum
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["iteration"] == 3
    assert log_lines(tmp_path / "b")[-1] == {"iteration": 3, "stopped_by": signal.Signals(signum).name}
    resumed = load_checkpoint(train(smoke(voc_root, tmp_path / "b", resume=True, **options)))
    for name, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][name]), name


def test_refinenet_train_stopped_by_sigterm_says_so_in_one_line_and_exits_143(voc_root, tmp_path, monkeypatch,
                                                                               capsys):
    def stopped(cfg):
        raise TrainingStopped(signal.SIGTERM, 4, tmp_path / "checkpoint.pt")

    monkeypatch.setattr("refinenet.engine_cli.train", stopped)
    code = main(["train", "--dataset", "voc2012", "--data-root", str(voc_root), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 143 and len(err) == 1
    assert err[0].startswith("stopped: SIGTERM: training stopped at iteration 4") and "--resume" in err[0]


class Killed(Exception):
    pass


def test_a_restart_before_the_first_checkpoint_is_marked_in_the_log_not_silently_repeated(voc_root, tmp_path):
    cfg = smoke(voc_root, tmp_path / "r", iterations=4, checkpoint_every=100)

    def killed_at_3(done: int) -> None:
        if done == 3:
            raise Killed

    with pytest.raises(Killed):
        train(cfg, on_iteration=killed_at_3)
    assert not (tmp_path / "r" / "checkpoint.pt").exists()
    train(cfg)  # starts again from iteration 0
    lines = log_lines(tmp_path / "r")
    starts = [i for i, r in enumerate(lines) if "session_start" in r]
    assert len(starts) == 2 and "restart" not in lines[starts[0]]
    assert lines[starts[1]]["restart"].startswith("iterations 1-3 logged above were not checkpointed")
    after = [r["iteration"] for r in lines[starts[1]:] if "loss" in r]
    assert after == [1, 2, 3, 4]


def test_a_resumed_session_after_its_checkpoint_is_not_marked_as_a_restart(voc_root, tmp_path):
    cfg = smoke(voc_root, tmp_path / "r", iterations=4, checkpoint_every=2)

    def killed_at_2(done: int) -> None:
        if done == 2:
            raise Killed

    with pytest.raises(Killed):
        train(cfg, on_iteration=killed_at_2)
    train(smoke(voc_root, tmp_path / "r", iterations=4, checkpoint_every=2, resume=True))
    lines = log_lines(tmp_path / "r")
    assert [r["iteration"] for r in lines if "loss" in r] == [1, 2, 3, 4]
    assert not any("restart" in r for r in lines)


def test_slurm_cpus_per_task_sets_torch_threads_and_the_log_records_it(voc_root, tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    try:
        train(smoke(voc_root, tmp_path / "r", iterations=1))
        session = log_lines(tmp_path / "r")[0]
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert (session["torch_threads"], session["slurm_cpus_per_task"], session["slurm_job_id"]) == (1, 1, "4242")


def test_a_gpu_process_keeps_one_granted_cpu_and_gives_the_rest_to_loader_workers(monkeypatch):
    threads = torch.get_num_threads()
    cfg = TrainConfig("voc2012", "x", "y", workers=8)
    try:
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "5")
        assert fit_cpu_grant(cfg, torch.device("cuda")).workers == 4 and torch.get_num_threads() == 1
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
        assert fit_cpu_grant(cfg, torch.device("cpu")).workers == 8 and torch.get_num_threads() == 3
        monkeypatch.delenv("SLURM_CPUS_PER_TASK")
        assert fit_cpu_grant(cfg, torch.device("cuda")) is cfg
    finally:
        torch.set_num_threads(threads)


def test_train_seconds_count_every_session_a_killed_one_included(tmp_path, monkeypatch):
    entry = store.Entry(tmp_path / "model", {"kind": "model"})
    sessions = []

    def session(cfg, on_iteration):
        sessions.append(cfg.resume)
        cfg.out.mkdir(parents=True, exist_ok=True)
        time.sleep(0.3)
        on_iteration(1)  # writes the session's time so far (every=0 below)
        if len(sessions) == 1:
            (cfg.out / "checkpoint.pt").write_bytes(b"w")
            raise Killed  # the finally still runs here; a SIGKILL would leave the tick's figure
        (cfg.out / "config.json").write_text(json.dumps({"iterations": 2, "amp": "none", "channels_last": False}))

    monkeypatch.setattr(store, "train", session)
    monkeypatch.setattr(store.TrainSeconds.__init__, "__defaults__", (0.0,))
    with pytest.raises(Killed):
        store.trained_model(entry, TrainConfig("voc2012", "x", "y"), {})
    first = json.loads((entry.folder / "train_seconds.json").read_text())["seconds"]
    record = store.trained_model(entry, TrainConfig("voc2012", "x", "y"), {})
    assert sessions == [False, True] and first >= 0.3 and record["train_seconds"] >= round(first + 0.3, 1)


def test_a_killed_session_counts_up_to_its_last_tick(tmp_path):
    path = tmp_path / "train_seconds.json"
    path.write_text(json.dumps({"seconds": 100.0}))  # earlier sessions
    seconds = store.TrainSeconds(path, every=0.0)
    time.sleep(0.2)
    seconds.tick(5)  # ... then the process is killed: no save at its end
    assert 100.2 <= json.loads(path.read_text())["seconds"] < 101
