"""What a model's job asks for and where it runs: the launcher options of `python -m benchmarks.reproduce`, the
CPUs, GPUs, memory and time a SLURM job requests (submitit's SlurmExecutor parameters, --slurm-extra last),
the local executor, and sbatch's refusal in one quoted line. The driver that submits and follows the jobs is
launch.py.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import submitit

from benchmarks.tables.run_options import RunOptions
from refinenet.cli_options import option, positive_int

LAUNCHERS = ("inline", "local", "slurm")


class SubmissionRefusedError(RuntimeError):
    """The scheduler refused a job (partition, gres, account, QOS, time limit): the message quotes sbatch and
    says which jobs were submitted before it (they stay recorded and keep running)."""



@dataclass
class LaunchOptions:
    """How the models are trained; options of `python -m benchmarks.reproduce`."""

    launcher: str = option("inline", "inline: train here, one model after another; local: --jobs parallel submitit "
                           "jobs on this machine; slurm: one submitit SLURM job per model", choices=LAUNCHERS)
    jobs: int = option(1, "local: models trained at once (one GPU each where GPUs exist)", type=positive_int)
    threads_per_job: int | None = option(None, "local / slurm without GPUs: CPU threads per job (default: the "
                                         "cores here shared out among --jobs)")
    partition: str | None = option(None, "slurm: the partition to submit to")
    gpus_per_job: int = option(1, "slurm: GPUs per job; more than one trains with DDP (one process per GPU)")
    cpus_per_task: int | None = option(None, "slurm: CPUs per task (#SBATCH --cpus-per-task); default: "
                                       "--threads-per-job (else the cores here shared out among --jobs) for CPU "
                                       "jobs, --workers + 1 per GPU process for GPU jobs")
    mem: str | None = option(None, "slurm: memory per node (#SBATCH --mem, e.g. 64G); default: the partition's")
    timeout_min: int = option(24 * 60, "local / slurm: a job's time limit in minutes; a job reaching it is requeued "
                              "and resumes from its last checkpoint")
    slurm_extra: Sequence[str] = option((), "slurm: more sbatch settings as KEY=VALUE (account=lab qos=high "
                                        "mem=64G ...)")
    poll_seconds: float = option(30.0, "local / slurm: how often the driver looks at its jobs")


def driver_options(opts: RunOptions, launch: LaunchOptions) -> RunOptions:
    """The run options the driver keys the store with. SLURM jobs run elsewhere: `--device auto` would mean the
    driver's device, so it becomes the jobs' (cuda with --gpus-per-job > 0, else cpu)."""
    if launch.launcher == "slurm":
        slurm_parameters(launch, opts.workers)  # a bad --slurm-extra fails before any work
        if opts.device == "auto":
            return dataclasses.replace(opts, device="cuda" if launch.gpus_per_job > 0 else "cpu")
    return opts


def job_threads(launch: LaunchOptions) -> int:
    """CPU threads of a job without GPUs: --threads-per-job, else this machine's cores shared out."""
    return launch.threads_per_job or max(1, (os.cpu_count() or 1) // launch.jobs)


def cpus_per_task(launch: LaunchOptions, workers: int) -> int:
    """The CPUs a SLURM task asks for: --cpus-per-task, else the job's threads (CPU jobs) or the data-loader
    workers and one for the process itself (one task per GPU)."""
    if launch.cpus_per_task:
        return launch.cpus_per_task
    return job_threads(launch) if launch.gpus_per_job == 0 else workers + 1


def job_request(launch: LaunchOptions, workers: int) -> str:
    """What one SLURM job asks for, in words (the plan prints it)."""
    params = slurm_parameters(launch, workers)
    tasks, cpus = params["ntasks_per_node"], params["cpus_per_task"]
    parts = [f"{params.get('gpus_per_node', 0)} GPU", f"{tasks} task{'s' * (tasks > 1)} x {cpus} CPU",
             f"mem {params.get('mem', 'partition default')}", f"time {params['time']} min",
             f"partition {params.get('partition', 'default')}"]
    extra = params.get("additional_parameters", {})
    return ", ".join(parts + [f"{k}={v}" for k, v in extra.items()])


def slurm_parameters(launch: LaunchOptions, workers: int = 0) -> dict:
    """submitit.SlurmExecutor parameters: one node, one task per GPU with its CPUs, the time limit, requeue on
    time-out; --slurm-extra last (it may override any of them)."""
    gpus = launch.gpus_per_job
    params = {"nodes": 1, "ntasks_per_node": max(1, gpus), "cpus_per_task": cpus_per_task(launch, workers),
              "time": launch.timeout_min, "signal_delay_s": 120, "job_name": "refinenet"}
    if gpus > 0:
        params["gpus_per_node"] = gpus
    if launch.partition:
        params["partition"] = launch.partition
    if launch.mem:
        params["mem"] = launch.mem
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


def slurm_executor(folder: Path, launch: LaunchOptions, workers: int = 0) -> submitit.SlurmExecutor:
    # time-outs requeue up to 20 times (each resumes from the last checkpoint); preemptions do not count
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=20)
    executor.update_parameters(**slurm_parameters(launch, workers))
    return executor


def local_executor(folder: Path, launch: LaunchOptions, gpu: int | None) -> submitit.LocalExecutor:
    executor = submitit.LocalExecutor(folder=folder)
    params = {"timeout_min": launch.timeout_min, "gpus_per_node": 0 if gpu is None else 1}
    if gpu is not None:
        params["visible_gpus"] = (gpu,)
    executor.update_parameters(**params)
    return executor


def scheduler_words(message: str) -> str:
    """sbatch's error lines as one quoted line, without their repeated `sbatch: error: ` prefix."""
    lines = [line.strip().removeprefix("sbatch: error: ").strip() for line in message.strip().splitlines()]
    return '"' + "; ".join(line for line in lines if line) + '" (sbatch)'
