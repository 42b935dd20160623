"""Helpers shared by training, evaluation and the benchmarks: device and processes.

As torchvision's references keep them in `utils.py`. torchrun sets RANK / WORLD_SIZE / LOCAL_RANK;
without it every helper acts for a single process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def resolve_device(device: str) -> torch.device:
    """`"auto"` -> cuda when present, else cpu; any other name as given."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def init_distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world, dev


def launch_rank() -> int:
    """The rank torchrun gave this process (0 without torchrun), known before the process group starts."""
    return int(os.environ.get("RANK", "0"))


def slurm_cpus() -> int | None:
    """The CPUs SLURM granted each task of this job (SLURM_CPUS_PER_TASK, set with --cpus-per-task), or None."""
    value = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def rank_and_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum of `value` over every process (a copy; `value` itself is left alone)."""
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
    return value


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    return all_reduce_sum(value) / dist.get_world_size() if dist.is_initialized() else value


def all_gather_object(obj) -> list:
    """Every process's `obj`, in rank order (`[obj]` for a single process)."""
    if not dist.is_initialized():
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()

