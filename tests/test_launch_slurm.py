"""The SLURM launcher without a scheduler: what a job asks for, a refused submission, completion seen through
the store, live states, Ctrl-C on the driver. tests/test_cluster.py runs the same against a real SLURM."""

from __future__ import annotations

import json

import pytest
import submitit

from benchmarks.reproduce import main as reproduce
from benchmarks.tables import executors, launch
from benchmarks.tables.executors import LaunchOptions


@pytest.fixture(autouse=True)
def no_srun(monkeypatch):
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", staticmethod(lambda: 1))


def sbatch_text(tmp_path, workers: int = 0, **options) -> str:
    executor = executors.slurm_executor(tmp_path, LaunchOptions(launcher="slurm", **options), workers)
    return executor._make_submission_file_text("python -m job", "uid")


def test_a_cpu_job_asks_for_its_threads_and_a_gpu_job_for_workers_plus_one_per_gpu_process(tmp_path, monkeypatch):
    assert "#SBATCH --cpus-per-task=3" in sbatch_text(tmp_path, gpus_per_job=0, threads_per_job=3)
    monkeypatch.setattr(launch.os, "cpu_count", lambda: 8)
    assert "#SBATCH --cpus-per-task=4" in sbatch_text(tmp_path, gpus_per_job=0, jobs=2)  # the cores shared out
    gpu = sbatch_text(tmp_path, workers=4, gpus_per_job=2)
    assert "#SBATCH --cpus-per-task=5" in gpu and "#SBATCH --ntasks-per-node=2" in gpu
    assert "#SBATCH --cpus-per-task=1" in sbatch_text(tmp_path, gpus_per_job=1)  # no workers: the process alone


def test_cpus_per_task_and_mem_are_passed_as_given(tmp_path):
    text = sbatch_text(tmp_path, workers=4, gpus_per_job=1, cpus_per_task=12, mem="64G")
    assert "#SBATCH --cpus-per-task=12" in text and "#SBATCH --mem=64G" in text
    assert "--mem" not in sbatch_text(tmp_path)  # the partition's default unless asked


def test_the_plan_shows_each_slurm_jobs_request(tmp_path, capsys):
    code = reproduce(["9", "--profile", "smoke", "--plan", "--launcher", "slurm", "--gpus-per-job", "2",
                      "--workers", "3", "--mem", "32G", "--timeout-min", "90", "--partition", "gpu",
                      "--results", str(tmp_path), "--cache", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 0
    request = "2 GPU, 2 tasks x 4 CPU, mem 32G, time 90 min, partition gpu"
    assert out.count(f"slurm job: {request}") == 4  # table 9's four models
    assert (tmp_path / "plan.csv").read_text().count(request) == 4


def test_sbatch_errors_become_one_quoted_line():
    message = ("sbatch: error: invalid partition specified: nosuch\n"
               "sbatch: error: Batch job submission failed: Invalid partition name specified\n")
    assert executors.scheduler_words(message) == ('"invalid partition specified: nosuch; Batch job submission failed: '
                                               'Invalid partition name specified" (sbatch)')


def fake_sbatch(monkeypatch, tmp_path, accepted: int) -> None:
    """sbatch that accepts the first `accepted` jobs (ids 101, 102, ...) and refuses the rest."""
    counter = tmp_path / "sbatch-calls"
    script = (f'n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; '
              f'if [ $n -le {accepted} ]; then echo "Submitted batch job $((100 + n))"; exit 0; fi; '
              'echo "sbatch: error: invalid partition specified: nosuch" >&2; '
              'echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2; exit 1')
    monkeypatch.setattr(submitit.SlurmExecutor, "_make_submission_command", lambda self, path: ["sh", "-c", script])


def error_lines(capsys) -> list[str]:
    """The driver's error lines (stand-in data generation may draw a progress bar before them)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and "sbatch: error" not in err.replace('"', "")  # quoted once, in the line
    return [line for line in err.splitlines() if line.startswith(("error:", "interrupted:"))]


def table9(tmp_path, *more) -> list[str]:
    return ["9", "--profile", "smoke", "--launcher", "slurm", "--partition", "nosuch", "--gpus-per-job", "0",
            "--results", str(tmp_path / "results"), "--cache", str(tmp_path / "cache"), "--no-progress", *more]


def test_a_refused_submission_is_one_error_line_exit_2_and_leaves_no_half_made_entry(tmp_path, monkeypatch,
                                                                                     capsys):
    fake_sbatch(monkeypatch, tmp_path, accepted=0)
    assert reproduce(table9(tmp_path)) == 2
    err = error_lines(capsys)
    assert len(err) == 1 and err[0].startswith("error: slurm: the scheduler refused the job of nyudv2-")
    assert '"invalid partition specified: nosuch; Batch job submission failed' in err[0]
    assert err[0].endswith("no job was submitted")
    assert not list((tmp_path / "results" / "runs").glob("models/*"))


def test_jobs_submitted_before_a_refusal_stay_recorded_and_the_line_says_so(tmp_path, monkeypatch, capsys):
    fake_sbatch(monkeypatch, tmp_path, accepted=2)
    assert reproduce(table9(tmp_path)) == 2
    err = error_lines(capsys)
    assert len(err) == 1 and "the 2 job(s) submitted before it (101, 102) keep running and are recorded" in err[0]
    records = sorted(json.loads(p.read_text())["job_id"]
                     for p in (tmp_path / "results" / "runs").glob("models/*/job.json"))
    assert records == ["101", "102"]
    assert len(list((tmp_path / "results" / "runs").glob("models/*"))) == 2  # the refused one left nothing


@pytest.fixture
def work(table9_single):
    work, session = table9_single
    work.entry.open()
    return work, session


class LaggingJob:
    """A job the scheduler's accounting still calls running."""

    job_id, log, record = "7", "jobs/7_0_log.err", {"logs": "jobs"}

    def done(self) -> bool:
        return False


def test_a_model_with_its_results_in_the_store_is_done_whatever_the_scheduler_says(work, monkeypatch):
    work, session = work
    polls, sleeps = [], []
    monkeypatch.setattr(launch, "running_job", lambda *a: None)
    monkeypatch.setattr(launch, "submit", lambda *a: LaggingJob())
    monkeypatch.setattr(launch, "refresh_states", lambda: polls.append(len(sleeps)))
    monkeypatch.setattr(launch.time, "sleep", sleeps.append)
    monkeypatch.setattr(launch, "finished", lambda w, s: len(sleeps) >= 3)  # the job's results land
    failures = launch.run_jobs([work], session, LaunchOptions(launcher="slurm", poll_seconds=0.5), {})
    assert failures == [] and sleeps == [0.5, 0.5, 0.5]  # --poll-seconds, and no wait past the results
    assert polls == [1, 2, 3]  # the scheduler asked at every poll, not on submitit's slowing clock


def test_preempted_is_live_and_a_job_sacct_does_not_know_is_live_only_when_just_submitted(tmp_path):
    record = {"launcher": "slurm", "job_id": "555", "logs": str(tmp_path)}
    watcher = submitit.SlurmJob.watcher
    job, fresh = launch.Attached(record), launch.Attached(record, submitted=object())
    try:
        for state, attached_done, fresh_done in (("PREEMPTED", False, False), ("REQUEUED", False, False),
                                                 ("CANCELLED by 0", True, True), ("COMPLETED", True, True),
                                                 ("", True, False)):
            watcher._info_dict["555"] = {"State": state}
            assert (job.done(), fresh.done()) == (attached_done, fresh_done), state
    finally:
        watcher._info_dict.pop("555", None)
        watcher._registered.discard("555")


def test_a_requeued_copy_of_a_finished_job_returns_at_once(work, monkeypatch, calls):
    work, session = work
    job = launch.ModelJob(work, session.opts, session.provenance.stamp())
    first = job()
    assert len(calls["train"]) == 1
    monkeypatch.setattr(launch.ModelJob, "run", lambda self: pytest.fail("the finished job ran again"))
    assert job() == first


def test_ctrl_c_on_the_driver_says_the_jobs_keep_running_and_exits_130(tmp_path, monkeypatch, capsys):
    def interrupted(*args):
        raise launch.DriverInterrupted(["101", "102"])

    monkeypatch.setattr(launch, "train_models", interrupted)
    assert reproduce(table9(tmp_path)) == 130
    err = error_lines(capsys)
    assert err == ["interrupted: the jobs still running (101, 102) keep running; the same command attaches to "
                   "them, resubmits what is missing and writes the tables"]


def test_ctrl_c_while_training_inline_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr("benchmarks.reproduce.run_table", interrupted)
    assert reproduce(["9", "--profile", "smoke", "--results", str(tmp_path), "--cache", str(tmp_path / "c"),
                      "--no-progress"]) == 130
    err = error_lines(capsys)
    assert len(err) == 1 and err[0].startswith("interrupted: finished models and evaluations are kept")
