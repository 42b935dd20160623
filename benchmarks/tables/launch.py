"""Training the tables' models as jobs: `python -m benchmarks.reproduce all --launcher {inline,local,slurm}`.

* `inline` (default): the runner trains each model in this process, one after another.
* `local --jobs N`: the distinct models of the requested tables train as N parallel jobs on this machine
  through submitit's LocalExecutor; where GPUs exist each job gets its own (CUDA_VISIBLE_DEVICES), else
  `--threads-per-job` CPU threads (by default the cores shared out).
* `slurm`: one submitit job per distinct model (`--partition`, `--gpus-per-job`, `--cpus-per-task`, `--mem`,
  `--timeout-min`, `--slurm-extra KEY=VALUE`). A job with several GPUs runs one process per GPU and trains
  with DDP: submitit sets the variables torchrun would (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) and
  the engine takes its torchrun path (refinenet/train.py). SIGUSR2 (the time limit near) and SIGTERM (a
  requeue, preemption or scancel) stop training at the end of a step with a checkpoint; after SIGUSR2
  submitit's hook (`ModelJob.checkpoint`) requeues the job, after SIGTERM SLURM does; the requeued job
  resumes from that checkpoint.

What a job asks for (CPUs, GPUs, memory, time) and the executors are in executors.py; this module holds
what a job runs (`ModelJob`) and the driver. Each job trains one model into its store entry (store.py) and
then evaluates every table row the model serves, so evaluation rows run as soon as their model is done. The
driver keeps each job's id in the entry's `job.json` and submitit's logs in the entry's `jobs/` folder. It
can be stopped and run again: it skips finished models, waits for jobs still running and resubmits what is
missing. Once every job has finished, the tables are written from the store as the inline runner writes them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import submitit
import torch

from benchmarks.provenance import REPO
from benchmarks.tables.data_roots import check_data
from benchmarks.tables.executors import (
    LaunchOptions,
    SubmissionRefusedError,
    job_threads,
    local_executor,
    scheduler_words,
    slurm_executor,
)
from benchmarks.tables.run_options import RunOptions, Session, select_rows
from benchmarks.tables.specs import TABLES
from benchmarks.tables.store import now
from benchmarks.tables.trained import ModelWork, row_evaluation, table_models, train_and_evaluate, trained_stages
from refinenet.atomic import write_text_atomic
from refinenet.train_stop import TrainingStopped

JOB_RECORD = "job.json"
# SLURM states in which a job may still finish on its own
SLURM_ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED",
                "REQUEUE_HOLD", "REQUEUE_FED", "PREEMPTED"}
# what sacct says of a job it has not recorded yet (just submitted) or cannot reach
SLURM_UNKNOWN = {"UNKNOWN", "READY"}


class JobFailedError(RuntimeError):
    """A job ended without its model's results; the message names each one and its log."""


class DriverInterrupted(Exception):
    """Ctrl-C on the driver: `jobs` are the ids of the jobs still running, which keep running."""

    def __init__(self, jobs: list[str]):
        self.jobs = jobs
        super().__init__(", ".join(jobs))


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
        done = self.work.entry.folder / "done.json"
        if done.is_file() and self.evaluated(json.loads(done.read_text())):
            return json.loads(done.read_text())  # a requeued copy of a job that finished: nothing to do
        # SIGTERM (a requeue, preemption or scancel) ends the job at once: submitit ignores it, which kept the
        # job training through the kill grace period. Inside the training loop SIGTERM and SIGUSR2 wait for
        # the step to end and a checkpoint (refinenet.train_stop.TrainingStopped).
        previous = signal.signal(signal.SIGTERM, exit_on_signal)
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            return self.run()
        except TrainingStopped as stopped:
            if stopped.signum == signal.SIGUSR2:  # submitit's requeue, now that the checkpoint is written
                requeue = signal.getsignal(signal.SIGUSR2)
                if callable(requeue):
                    requeue(stopped.signum, None)
            raise SystemExit(128 + stopped.signum) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    def evaluated(self, done: dict) -> bool:
        store_dir = self.work.entry.folder.parents[1]
        return all(row_evaluation(self.work, row, done, self.opts, store_dir)[0].folder.joinpath("result.json")
                   .is_file() for _, row in self.work.rows)

    def run(self) -> dict:
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


def exit_on_signal(signum: int, frame) -> None:
    print(f"{signal.Signals(signum).name}: leaving the job (the model resumes from its last checkpoint)",
          file=sys.stderr)
    raise SystemExit(128 + signum)


def train_distributed(work: ModelWork, stamp: dict) -> None:
    """Every process trains (DDP); then the process group is closed so that rank 0 can evaluate alone."""
    trained_stages(work, stamp)  # Table 4: the COCO stage first
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


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
    """A job, found through its job.json: one an earlier driver started, or (`submitted`) this driver's."""

    def __init__(self, record: dict, submitted=None):
        self.record, self.job_id, self.submitted = record, record["job_id"], submitted
        self.slurm = submitit.SlurmJob(folder=record["logs"], job_id=record["job_id"]) \
            if record["launcher"] == "slurm" else None

    def done(self) -> bool:
        """Whether the scheduler says the job has ended (refresh_states first: this reads its cache)."""
        if self.slurm is not None:
            state = self.slurm.watcher.get_state(self.job_id, mode="cache").split()[0]
            # a job sacct does not know yet is still starting if this driver submitted it
            return state not in SLURM_ACTIVE and not (self.submitted is not None and state in SLURM_UNKNOWN)
        if self.submitted is not None:
            return self.submitted.done()
        return not pid_alive(int(self.job_id))

    def exception(self):
        """The job's exception where this driver submitted it (submitit reads it from the job's result file).
        Not for an earlier driver's job: submitit would wait on a state it may never see as final."""
        return self.submitted.exception() if self.submitted is not None else None

    @property
    def log(self) -> str:
        return self.record.get("stderr", self.record["logs"])


def refresh_states() -> None:
    """Ask SLURM (one sacct call) for the state of every job this process follows. submitit's own refresh
    slows to one call every 10 minutes on long jobs, which kept a finished job waiting (issue 22)."""
    watcher = submitit.SlurmJob.watcher
    if watcher._registered:  # noqa: SLF001 - no sacct call when no SLURM job is followed
        watcher.update()


def running_job(work: ModelWork, launcher: str) -> Attached | None:
    """The job an earlier driver started for `work`, if it is still running."""
    record = read_job(work)
    if record is None or record["launcher"] != launcher:
        return None
    job = Attached(record)
    if job.slurm is not None:
        refresh_states()
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
    threads = job_threads(launch)
    waiting, active, failures, submitted = list(todo), [], [], []
    try:
        while waiting or active:
            while waiting and (not local or slots):
                work = waiting.pop(0)
                slot = slots.pop(0) if local else None
                job = running_job(work, launch.launcher)
                if job is None:
                    try:
                        job = submit(work, session, launch, stamp, slot, threads)
                    except SubmissionRefusedError as err:
                        raise SubmissionRefusedError(f"{err}; {submitted_line(submitted)}") from None
                    submitted.append(job.job_id)
                    print(f"  submitted {work.entry.name}: job {job.job_id}, logs in {job.record['logs']}")
                else:
                    print(f"  waiting for {work.entry.name}: job {job.job_id} is still running")
                active.append((work, job, slot))
            time.sleep(launch.poll_seconds)
            if launch.launcher == "slurm":
                refresh_states()
            active, ended = poll(active, session)
            for work, job, slot in ended:
                if local:
                    slots.append(slot)
                if finished(work, session):
                    print(f"  done {work.entry.name}")
                else:
                    failures.append(f"  {work.entry.name}: job {job.job_id}: {job_error(job)}")
    except KeyboardInterrupt:
        raise DriverInterrupted([job.job_id for _, job, _ in active]) from None
    return failures


def poll(active: list, session: Session) -> tuple[list, list]:
    """(still running, ended) of the active jobs. A model whose results are in the store counts as ended
    whatever the scheduler says (its accounting may lag)."""
    still, ended = [], []
    for item in active:
        work, job, _ = item
        (ended if finished(work, session) or job.done() else still).append(item)
    return still, ended


def submitted_line(submitted: list[str]) -> str:
    if not submitted:
        return "no job was submitted"
    return (f"the {len(submitted)} job(s) submitted before it ({', '.join(submitted)}) keep running and are recorded: "
            "the same command, with the settings fixed, attaches to them")


def submit(work: ModelWork, session: Session, launch: LaunchOptions, stamp: dict, gpu: int | None,
           threads: int) -> Attached:
    """Submit `work`'s job and record it in job.json. A refused submission raises SubmissionRefusedError
    quoting the scheduler and leaves nothing behind that this call made (folders, submission files)."""
    entry_existed = work.entry.folder.exists()
    folder = work.entry.open() / "jobs"
    jobs_existed = folder.exists()
    before = set(folder.iterdir()) if jobs_existed else set()
    opts = dataclasses.replace(session.opts, fresh=False, progress=False)
    if launch.launcher == "slurm":
        executor = slurm_executor(folder, launch, session.opts.workers)
        job_fn = ModelJob(work, opts, stamp, distributed=launch.gpus_per_job > 1)
    else:
        executor = local_executor(folder, launch, gpu)
        job_fn = ModelJob(work, opts, stamp, threads=None if gpu is not None else threads)
    try:
        # submitit prints sbatch's error before raising it; the error line quotes it once
        with contextlib.redirect_stderr(io.StringIO()):
            job = executor.submit(job_fn)
    except submitit.core.utils.FailedJobError as err:
        if not entry_existed:
            shutil.rmtree(work.entry.folder, ignore_errors=True)
        elif not jobs_existed:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            for path in set(folder.iterdir()) - before:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        raise SubmissionRefusedError(f"{launch.launcher}: the scheduler refused the job of {work.entry.name}: "
                                     f"{scheduler_words(str(err))}") from None
    record_job(work, launch.launcher, job)
    return Attached(read_job(work), submitted=job)


def job_error(job) -> str:
    """Why a job ended without results: its exception where submitit has it, and where its log is."""
    log = getattr(job, "log", None) or str(job.paths.stderr)
    try:
        error = job.exception() if hasattr(job, "exception") else None
    except Exception as err:  # noqa: BLE001 - a job that left no result says so in its own way
        error = err
    text = str(error).strip().splitlines()[-1] if error else "no result"
    return f"{text} (log: {log})"
