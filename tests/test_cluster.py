"""The SLURM launcher against a real scheduler: `nox -s cluster-tests` starts a single-node SLURM on
127.0.0.1 (tests/cluster/slurm_up.sh), runs these, and stops it. Elsewhere they are skipped.

One model (Table 9's 'single' row, smoke profile, a few more iterations so that signals land mid-training)
is trained inline once; each test trains it again as a SLURM job into its own store and compares: the table's
values, every iteration's loss and the final weights are identical after a USR2 requeue (submitit's
time-out path), a SIGTERM requeue (`scontrol requeue`, preemption) and a restarted driver.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ITERATIONS = 8


def cluster_up() -> str:
    """'' when a cluster answers, else why these tests are skipped."""
    if os.environ.get("REFINENET_SLURM_TESTS") != "1":
        return "no SLURM cluster for the tests: `nox -s cluster-tests` starts one (tests/cluster/slurm_up.sh)"
    try:
        subprocess.run(["sinfo", "-h"], check=True, capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as err:
        return f"REFINENET_SLURM_TESTS=1 but sinfo does not answer ({err}); is SLURM_CONF set?"
    return ""


pytestmark = pytest.mark.skipif(bool(cluster_up()), reason=cluster_up() or "cluster up")


def command(results: Path, cache: Path, launcher: str, *more: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.reproduce", "9", "--profile", "smoke", "--rows", "single",
            "--iterations", str(ITERATIONS), "--launcher", launcher, "--gpus-per-job", "0", "--results",
            str(results), "--cache", str(cache), "--poll-seconds", "1", "--no-progress", *more]


def environment() -> dict:
    # the same layout inline and in the job (else picked by a timing, which a busy machine may change)
    return {**os.environ, "REFINENET_CPU_LAYOUT": "nchw"}


def run(args: list[str], timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, env=environment(), capture_output=True, text=True, timeout=timeout)


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=REPO, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def model_folder(results: Path) -> Path:
    [folder] = (results / "runs" / "models").glob("*")
    return folder


def log(results: Path) -> list[dict]:
    path = model_folder(results) / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def losses(results: Path) -> dict[int, float]:
    return {r["iteration"]: r["loss"] for r in log(results) if "loss" in r}


def wait_for(what: str, condition, seconds: float = 300):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with_value = condition()
        if with_value:
            return with_value
        time.sleep(0.5)
    raise AssertionError(f"waited {seconds:.0f} s for {what}")


def training(results: Path) -> str:
    """Wait until the job trains (an iteration logged, the end not reached); its SLURM job id."""
    def started():
        try:
            done = losses(results)
        except (ValueError, OSError):  # a line being written
            return None
        return bool(done) and max(done) < ITERATIONS - 2
    wait_for("the job to log its first iteration", lambda: (model_folder_exists(results) and started()))
    return json.loads((model_folder(results) / "job.json").read_text())["job_id"]


def release(job_id: str) -> None:
    """Start a requeued job now: SLURM holds a requeued job back for about 2 minutes (its BeginTime), which
    would only make these tests slower."""
    def pending():
        state = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout
        return state.strip() == "PENDING"
    wait_for(f"job {job_id} to be requeued", pending, 120)
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)


def model_folder_exists(results: Path) -> bool:
    return len(list((results / "runs" / "models").glob("*"))) == 1 if (results / "runs").exists() else False


def weights(results: Path) -> dict:
    return torch.load(model_folder(results) / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]


def table(results: Path) -> pd.DataFrame:
    return pd.read_csv(results / "table9.csv")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def inline(tmp_path_factory, cache) -> Path:
    results = tmp_path_factory.mktemp("inline")
    done = run(command(results, cache, "inline"))
    assert done.returncode == 0, done.stderr
    return results


def assert_same_model(results: Path, inline: Path) -> None:
    assert losses(results) == losses(inline)  # every iteration, bit for bit
    ours, theirs = weights(results), weights(inline)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    measured = ["row", "metric", "measured_value", "iterations"]
    assert table(results)[measured].equals(table(inline)[measured])


def test_a_slurm_job_trains_the_inline_model_on_the_cpus_it_was_granted(tmp_path, cache, inline):
    done = run(command(tmp_path, cache, "slurm"))
    assert done.returncode == 0, done.stderr
    assert "submitted" in done.stdout and "table 9: 1 measurements" in done.stdout
    assert_same_model(tmp_path, inline)
    [session] = [r for r in log(tmp_path) if "session_start" in r]
    job_id = session["slurm_job_id"]
    granted = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "AllocCPUS"], capture_output=True,
                             text=True, check=True).stdout.split()
    assert session["slurm_cpus_per_task"] == session["torch_threads"] == int(granted[0]) == os.cpu_count()


def test_usr2_checkpoints_requeues_and_the_job_resumes_bit_identically(tmp_path, cache, inline):
    driver = start(command(tmp_path, cache, "slurm"))
    try:
        job_id = training(tmp_path)
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
        release(job_id)
        out, err = driver.communicate(timeout=400)
    finally:
        driver.kill()
    assert driver.returncode == 0, err
    lines = log(tmp_path)
    assert {"stopped_by": "SIGUSR2"}.items() <= next(r for r in lines if "stopped_by" in r).items()
    assert len([r for r in lines if "session_start" in r]) == 2 and not any("restart" in r for r in lines)
    assert_same_model(tmp_path, inline)


def test_sigterm_requeue_and_a_restarted_driver_finish_the_table_bit_identically(tmp_path, cache, inline):
    args = command(tmp_path, cache, "slurm")
    driver = start(args)
    try:
        job_id = training(tmp_path)
        driver.send_signal(signal.SIGINT)  # Ctrl-C: the job keeps running
        out, err = driver.communicate(timeout=60)
    finally:
        driver.kill()
    assert driver.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"interrupted: the jobs still running ({job_id}) keep running")
    subprocess.run(["scontrol", "requeue", job_id], check=True)  # SIGTERM, as a preemption sends
    release(job_id)
    started = time.monotonic()
    done = run(args)
    assert done.returncode == 0, done.stderr
    assert f"job {job_id} is still running" in done.stdout  # attached, not resubmitted
    lines = log(tmp_path)
    stop = next(r for r in lines if "stopped_by" in r)
    assert stop["stopped_by"] == "SIGTERM"
    assert_same_model(tmp_path, inline)
    print(f"requeued job finished {time.monotonic() - started:.0f} s after the requeue")


@pytest.mark.parametrize(("more", "sbatch_says"), [
    (("--partition", "nosuchpartition"), "invalid partition specified: nosuchpartition"),
    (("--gpus-per-job", "1"), "Invalid generic resource (gres) specification"),  # a node without GPUs
])
def test_a_refused_submission_is_one_line_quoting_sbatch_and_leaves_no_entry(tmp_path, cache, more, sbatch_says):
    done = run(command(tmp_path, cache, "slurm", *more), timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in done.stderr
    assert f'"{sbatch_says}' in errors[0] and errors[0].endswith("no job was submitted")
    assert not list((tmp_path / "runs" / "models").glob("*"))
