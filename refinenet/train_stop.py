"""Stopping a training run between steps: SIGTERM (a requeue, preemption, scancel or time limit) and SIGUSR2
(SLURM's warning before the time limit) ask the loop to stop at the end of the step it is in; every process agrees
on the step, the run writes its checkpoint there and raises `TrainingStopped`, and the same command continues it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

import torch


class TrainingStopped(Exception):
    """A stop signal arrived (SIGTERM: a requeue, preemption, scancel or time limit; SIGUSR2: SLURM's warning
    before the time limit): the run wrote a checkpoint at the end of the step it was in and stopped."""

    def __init__(self, signum: int, iteration: int, checkpoint: Path):
        self.signum, self.iteration, self.checkpoint = signum, iteration, checkpoint
        super().__init__(f"{signal.Signals(signum).name}: training stopped at iteration {iteration}; the checkpoint "
                         f"{checkpoint} is kept and the same command (or --resume) continues from it")


# Signals that end training at the next step boundary, after a checkpoint, rather than mid-step.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)


@contextlib.contextmanager
def stop_requests(signals=STOP_SIGNALS):
    """While the training loop runs, each of `signals` asks it to stop at the end of the current step (after a
    checkpoint); the list it yields holds the signals received. Outside the loop the handlers that were there
    before answer (submitit's requeue on SIGUSR2, ...). Signal handlers can only be set in the main thread:
    elsewhere nothing changes."""
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    previous = {s: signal.signal(s, lambda signum, frame: requested.append(signum)) for s in signals}
    try:
        yield requested
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def stop_requested(requested: list[int], world: int) -> int | None:
    """The signal that stops the run at this step boundary, agreed by every process (one may have been
    signalled a step before another: they must checkpoint at the same iteration)."""
    signum = requested[0] if requested else 0
    if world > 1:
        flag = torch.tensor([signum], dtype=torch.float64,
                            device="cuda" if torch.distributed.get_backend() == "nccl" else "cpu")
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        signum = int(flag.item())
    return signum or None
