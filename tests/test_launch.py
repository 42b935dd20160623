"""Launchers: the SLURM executor's parameters, the requeue hook's resume, the driver's job records.

The local launcher's end-to-end check (the same table as inline) is in test_benchmarks.py, beside the
inline smoke run it compares with.
"""

from __future__ import annotations

import json
import os

import pytest
import submitit

from benchmarks.reproduce import main as reproduce
from benchmarks.tables import executors, launch, store, trained
from benchmarks.tables.executors import LaunchOptions
from benchmarks.tables.run_options import RunOptions, Session
from refinenet import data
from refinenet.config import resolve


def test_slurm_job_asks_for_its_partition_gpus_one_task_per_gpu_time_and_extras(tmp_path, monkeypatch):
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", staticmethod(lambda: 1))  # no srun here
    options = LaunchOptions(launcher="slurm", partition="gpu", gpus_per_job=4, timeout_min=90,
                            slurm_extra=("account=lab", "cpus_per_task=8", "mail-type=END", "reservation=big"))
    executor = executors.slurm_executor(tmp_path, options)
    sbatch = executor._make_submission_file_text("python -m job", "uid")
    for line in ("--partition=gpu", "--gpus-per-node=4", "--ntasks-per-node=4", "--time=90", "--account=lab",
                 "--cpus-per-task=8", "--mail-type=END", "--reservation=big", "--signal=USR2@120",
                 "--open-mode=append"):
        assert f"#SBATCH {line}" in sbatch, line
    assert executor.parameters["additional_parameters"] == {"reservation": "big"}


def test_slurm_extra_without_a_value_is_rejected_naming_the_option(tmp_path, capsys):
    code = reproduce(["9", "--profile", "smoke", "--launcher", "slurm", "--slurm-extra", "account",
                      "--results", str(tmp_path)])
    assert code == 2 and "--slurm-extra 'account': expected KEY=VALUE" in capsys.readouterr().err


def test_slurm_driver_keys_the_store_with_the_jobs_device_not_its_own():
    opts = RunOptions(device="auto")
    assert executors.driver_options(opts, LaunchOptions(launcher="slurm", gpus_per_job=2)).device == "cuda"
    assert executors.driver_options(opts, LaunchOptions(launcher="slurm", gpus_per_job=0)).device == "cpu"
    assert executors.driver_options(opts, LaunchOptions(launcher="local")).device == "auto"


@pytest.fixture
def work(table9_single):
    """Table 9's 'single' model under the smoke profile (tests/conftest.py); each test fakes training and evaluation."""
    return table9_single


def test_requeued_job_resumes_from_the_checkpoint_the_preempted_one_left(work, monkeypatch):
    work, session = work
    started = []

    def preempted_train(cfg, **_):
        started.append(cfg.resume)
        cfg.out.mkdir(parents=True, exist_ok=True)
        if len(started) == 1:  # the first job writes a checkpoint, then SLURM stops it
            (cfg.out / "checkpoint.pt").write_bytes(b"iteration 2")
            raise KeyboardInterrupt("preempted")
        (cfg.out / "config.json").write_text(json.dumps({"iterations": resolve(cfg).iterations, "amp": "none",
                                                          "channels_last": False}))

    def fake_evaluate(cfg):
        names = data.dataset_info(cfg.dataset).class_names
        return {"miou": 0.5, "pixel_acc": 0.5, "mean_acc": 0.5, "per_class_iou": {n: 0.5 for n in names},
                "class_pixels": [1] * len(names)}

    monkeypatch.setattr(store, "train", preempted_train)
    monkeypatch.setattr(store, "evaluate", fake_evaluate)
    job = launch.ModelJob(work, session.opts, session.provenance.stamp())
    with pytest.raises(KeyboardInterrupt):
        job()
    requeued = job.checkpoint()
    assert isinstance(requeued, submitit.helpers.DelayedSubmission)
    assert requeued.function is not job and requeued.function.work == work
    requeued.result()
    assert started == [False, True]  # the requeued job resumed
    assert launch.finished(work, session)  # trained and its row evaluated


def test_rerun_driver_waits_for_a_running_job_and_resubmits_a_dead_one(work):
    work, _ = work
    work.entry.open()
    record = {"launcher": "local", "job_id": str(os.getpid()), "logs": "jobs", "stderr": "jobs/x.err"}
    (work.entry.folder / launch.JOB_RECORD).write_text(json.dumps(record))
    assert launch.running_job(work, "local").job_id == str(os.getpid())  # this process: alive
    assert launch.running_job(work, "slurm") is None  # another launcher's record
    (work.entry.folder / launch.JOB_RECORD).write_text(json.dumps({**record, "job_id": "999999999"}))
    assert launch.running_job(work, "local") is None  # gone: to resubmit


def test_rows_of_several_tables_that_share_a_model_run_in_its_one_job(tmp_path, monkeypatch):
    opts = RunOptions(profile="smoke", results=tmp_path / "results", cache=tmp_path / "cache", progress=False,
                      rows=("152",))
    works = launch.distinct_models([2, 3], Session.start(opts))
    by_dataset = {w.cfg.dataset: w for w in works}
    assert len(works) == 2  # NYUDv2 and Person-Part ResNet-152
    assert [(n, r.label) for n, r in by_dataset["nyudv2"].rows] == [(2, "ResNet-152, pool yes, msc yes"),
                                                                    (3, "RefineNet-Res152")]
    assert trained.ModelWork is type(works[0])
