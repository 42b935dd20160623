"""Training the tables' models as jobs: `python -m benchmarks.reproduce all --launcher {inline,local,slurm}`.

* `inline` (default): the runner trains each model in this process, one after another.
* `local --jobs N`: the distinct models of the requested tables train as N parallel jobs on this machine
  through submitit's LocalExecutor; where GPUs exist each job gets its own (CUDA_VISIBLE_DEVICES), else
  `--threads-per-job` CPU threads (by default the cores shared out).
* `slurm`: one submitit job per distinct model (`--partition`, `--gpus-per-job`, `--timeout-min`,
  `--slurm-extra KEY=VALUE`). A job with several GPUs runs one process per GPU and trains with DDP: submitit
  sets the variables torchrun would (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) and the engine takes its
  torchrun path (refinenet/train.py). A job that is preempted or reaches its time limit is requeued by
  submitit's checkpointing hook (`ModelJob.checkpoint`) and resumes from the model's last checkpoint.

Each job trains one model into its store entry (benchmarks/store.py) and then evaluates every table row the
model serves, so evaluation rows run as soon as their model is done. The driver keeps each job's id in the
entry's `job.json` and submitit's logs in the entry's `jobs/` folder. It can be stopped and run again: it
skips finished models, waits for jobs still running and resubmits what is missing. Once every job has
finished, the tables are written from the store as the inline runner writes them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import submitit
import torch

from benchmarks.runner import (
    REPO,
    ModelWork,
    RunOptions,
    Session,
    check_data,
    row_evaluation,
    select_rows,
    table_models,
    train_and_evaluate,
    trained_stages,
)
from benchmarks.store import now
from benchmarks.tables import TABLES
from refinenet.atomic import write_text_atomic
from refinenet.cli_options import option, positive_int

LAUNCHERS = ("inline", "local", "slurm")
JOB_RECORD = "job.json"
# SLURM states in which a job may still finish on its own
SLURM_ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED",
                "REQUEUE_HOLD", "REQUEUE_FED"}


class JobFailedError(RuntimeError):
    """A job ended without its model's results; the message names each one and its log."""


@dataclass
class LaunchOptions:
    """How the models are trained; options of `python -m benchmarks.reproduce`."""

    launcher: str = option("inline", "inline: train here, one model after another; local: --jobs parallel submitit "
                           "jobs on this machine; slurm: one submitit SLURM job per model", choices=LAUNCHERS)
    jobs: int = option(1, "local: models trained at once (one GPU each where GPUs exist)", type=positive_int)
    threads_per_job: int | None = option(None, "local without GPUs: CPU threads per job (default: the cores shared "
                                         "out among --jobs)")
    partition: str | None = option(None, "slurm: the partition to submit to")
    gpus_per_job: int = option(1, "slurm: GPUs per job; more than one trains with DDP (one process per GPU)")
    timeout_min: int = option(24 * 60, "local / slurm: a job's time limit in minutes; a job reaching it is requeued "
                              "and resumes from its last checkpoint")
    slurm_extra: Sequence[str] = option((), "slurm: more sbatch settings as KEY=VALUE (account=lab qos=high "
                                        "mem=64G ...)")
    poll_seconds: float = option(30.0, "local / slurm: how often the driver looks at its jobs")


def driver_options(opts: RunOptions, launch: LaunchOptions) -> RunOptions:
    """The run options the driver keys the store with. SLURM jobs run elsewhere: `--device auto` would mean the
    driver's device, so it becomes the jobs' (cuda with --gpus-per-job > 0, else cpu)."""
    if launch.launcher == "slurm":
        slurm_parameters(launch)  # a bad --slurm-extra fails before any work
        if opts.device == "auto":
            return dataclasses.replace(opts, device="cuda" if launch.gpus_per_job > 0 else "cpu")
    return opts


# ---------------------------------------------------------------------------------------------
# The job


@dataclass
class ModelJob:
    """What a job runs: train one model into its store entry (resuming), then evaluate the rows it serves."""

    work: ModelWork
    opts: RunOptions
    stamp: dict
    distributed: bool = False  # one process per GPU (SLURM tasks), DDP through the engine's torchrun path
    threads: int | None = None

    def __call__(self) -> dict:
        if self.threads:
            torch.set_num_threads(self.threads)
        if self.distributed:
            env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
            train_distributed(self.work, self.stamp)
            if env.rank != 0:
                return {}
            # rank 0 evaluates alone on its GPU (the other processes have left)
            os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
        return train_and_evaluate(self.work, self.opts, self.stamp)

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """submitit's hook on preemption or time-out: requeue this job. The requeued job resumes the model from
        the last checkpoint in its store entry (store.trained_model resumes whatever it finds there)."""
        return submitit.helpers.DelayedSubmission(dataclasses.replace(self))


def train_distributed(work: ModelWork, stamp: dict) -> None:
    """Every process trains (DDP); then the process group is closed so that rank 0 can evaluate alone."""
    trained_stages(work, stamp)  # Table 4: the COCO stage first
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


# ---------------------------------------------------------------------------------------------
# Executors


def slurm_parameters(launch: LaunchOptions) -> dict:
    """submitit.SlurmExecutor parameters: one node, one task per GPU, the time limit, requeue on time-out."""
    gpus = launch.gpus_per_job
    params = {"nodes": 1, "ntasks_per_node": max(1, gpus), "time": launch.timeout_min, "signal_delay_s": 120,
              "job_name": "refinenet"}
    if gpus > 0:
        params["gpus_per_node"] = gpus
    if launch.partition:
        params["partition"] = launch.partition
    known = submitit.SlurmExecutor._valid_parameters()
    extra = {}
    for item in launch.slurm_extra:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--slurm-extra {item!r}: expected KEY=VALUE (e.g. account=lab)")
        key = key.strip().lstrip("-").replace("-", "_")
        value = int(value) if value.isdigit() else value
        if key in known and key != "additional_parameters":
            params[key] = value
        else:
            extra[key] = value
    if extra:
        params["additional_parameters"] = extra
    return params


def slurm_executor(folder: Path, launch: LaunchOptions) -> submitit.SlurmExecutor:
    # time-outs requeue up to 20 times (each resumes from the last checkpoint); preemptions do not count
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=20)
    executor.update_parameters(**slurm_parameters(launch))
    return executor


def local_executor(folder: Path, launch: LaunchOptions, gpu: int | None) -> submitit.LocalExecutor:
    executor = submitit.LocalExecutor(folder=folder)
    params = {"timeout_min": launch.timeout_min, "gpus_per_node": 0 if gpu is None else 1}
    if gpu is not None:
        params["visible_gpus"] = (gpu,)
    executor.update_parameters(**params)
    return executor


# ---------------------------------------------------------------------------------------------
# The driver


def distinct_models(tables: list[int], session: Session) -> list[ModelWork]:
    """The distinct models of `tables`, each with every row it serves (across tables), data checked first."""
    merged: dict[Path, ModelWork] = {}
    for number in tables:
        rows = select_rows(TABLES[number], session.opts.rows)
        roots = check_data(rows, session.opts, training=True)
        for work in table_models(number, rows, session, roots):
            if work.entry.folder in merged:
                merged[work.entry.folder].rows += work.rows
            else:
                merged[work.entry.folder] = work
    return list(merged.values())


def finished(work: ModelWork, session: Session) -> bool:
    """The model is trained and every row it serves is evaluated (in the store)."""
    done = work.entry.folder / "done.json"
    if not done.is_file():
        return False
    record = json.loads(done.read_text())
    return all(evaluation_entry(work, row, record, session).folder.joinpath("result.json").is_file()
               for _, row in work.rows)


def evaluation_entry(work: ModelWork, row, done: dict, session: Session):
    return row_evaluation(work, row, done, session.opts, session.store_dir, session.data_identity)[0]


def read_job(work: ModelWork) -> dict | None:
    path = work.entry.folder / JOB_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def record_job(work: ModelWork, launcher: str, job) -> None:
    """Keep the job's id and log folder beside the model's entry (earlier attempts stay in `history`)."""
    old = read_job(work)
    history = ([*old.get("history", []), {k: old[k] for k in ("launcher", "job_id", "submitted_at")}] if old else [])
    record = {"launcher": launcher, "job_id": str(job.job_id), "submitted_at": now(),
              "logs": str(job.paths.folder), "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr),
              "history": history}
    write_text_atomic(work.entry.folder / JOB_RECORD, json.dumps(record, indent=1) + "\n")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a finished child that nobody waited for is a zombie, not a running job
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class Attached:
    """A job started by an earlier driver, found through its job.json."""

    def __init__(self, record: dict):
        self.record, self.job_id = record, record["job_id"]
        self.slurm = submitit.SlurmJob(folder=record["logs"], job_id=record["job_id"]) \
            if record["launcher"] == "slurm" else None

    def done(self) -> bool:
        if self.slurm is not None:
            return self.slurm.state.split()[0] not in SLURM_ACTIVE
        return not pid_alive(int(self.job_id))

    @property
    def log(self) -> str:
        return self.record.get("stderr", self.record["logs"])


def running_job(work: ModelWork, launcher: str) -> Attached | None:
    """The job an earlier driver started for `work`, if it is still running."""
    record = read_job(work)
    if record is None or record["launcher"] != launcher:
        return None
    job = Attached(record)
    return None if job.done() else job


def train_models(tables: list[int], session: Session, launch: LaunchOptions) -> None:
    """Train (and evaluate) every model `tables` need as jobs, waiting until all have finished; the runner then
    finds every model and evaluation in the store. Raises JobFailedError naming the jobs that failed."""
    works = distinct_models(tables, session)
    for work in works:
        session.fresh(work.entry)
        if work.init is not None:  # Table 4's COCO stage, trained in the same job
            session.fresh(work.init.entry)
    todo = [w for w in works if not finished(w, session)]
    print(f"{launch.launcher} launcher: {len(works)} distinct models, {len(works) - len(todo)} already done, "
          f"{len(todo)} to train")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    stamp = session.provenance.stamp()
    failures = run_jobs(todo, session, launch, stamp)
    # the rows the jobs evaluated count as this run's (--fresh must not redo them)
    for work in works:
        done = work.entry.folder / "done.json"
        if done.is_file():
            record = json.loads(done.read_text())
            session.refreshed.update(evaluation_entry(work, row, record, session).folder for _, row in work.rows)
    if failures:
        raise JobFailedError("these models' jobs ended without their results (rerun to resubmit them):\n" +
                             "\n".join(failures))


def run_jobs(todo: list[ModelWork], session: Session, launch: LaunchOptions, stamp: dict) -> list[str]:
    """Submit (or re-attach to) a job per model, at most --jobs at once locally (one GPU each where GPUs exist);
    wait for all of them. Returns a line per job that ended without its model's results."""
    local = launch.launcher == "local"
    gpus = torch.cuda.device_count() if local else 0
    slots = list(range(gpus))[:launch.jobs] if gpus else [None] * launch.jobs
    threads = launch.threads_per_job or max(1, (os.cpu_count() or 1) // launch.jobs)
    waiting, active, failures = list(todo), [], []
    while waiting or active:
        while waiting and (not local or slots):
            work = waiting.pop(0)
            slot = slots.pop(0) if local else None
            job = running_job(work, launch.launcher)
            if job is None:
                job = submit(work, session, launch, stamp, slot, threads)
                print(f"  submitted {work.entry.name}: job {job.job_id}, logs in {job.paths.folder}")
            else:
                print(f"  waiting for {work.entry.name}: job {job.job_id} is still running")
            active.append((work, job, slot))
        time.sleep(launch.poll_seconds)
        still = []
        for work, job, slot in active:
            if not job.done():
                still.append((work, job, slot))
                continue
            if local:
                slots.append(slot)
            if finished(work, session):
                print(f"  done {work.entry.name}")
            else:
                failures.append(f"  {work.entry.name}: job {job.job_id}: {job_error(job)}")
        active = still
    return failures


def submit(work: ModelWork, session: Session, launch: LaunchOptions, stamp: dict, gpu: int | None, threads: int):
    folder = work.entry.open() / "jobs"
    opts = dataclasses.replace(session.opts, fresh=False, progress=False)
    if launch.launcher == "slurm":
        executor = slurm_executor(folder, launch)
        job_fn = ModelJob(work, opts, stamp, distributed=launch.gpus_per_job > 1)
    else:
        executor = local_executor(folder, launch, gpu)
        job_fn = ModelJob(work, opts, stamp, threads=None if gpu is not None else threads)
    job = executor.submit(job_fn)
    record_job(work, launch.launcher, job)
    return job


def job_error(job) -> str:
    """Why a job ended without results: its exception where submitit has it, and where its log is."""
    log = getattr(job, "log", None) or str(job.paths.stderr)
    try:
        error = job.exception() if hasattr(job, "exception") else None
    except Exception as err:  # noqa: BLE001 - a job that left no result says so in its own way
        error = err
    text = str(error).strip().splitlines()[-1] if error else "no result"
    return f"{text} (log: {log})"
