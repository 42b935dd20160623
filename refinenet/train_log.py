"""What a training run reports: the progress bar and, on rank 0, the run folder's `log.jsonl` (a line that opens
every session, the loss, learning rates and speed every `log_every` steps; validation lines are written by the loop).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import torch
from tqdm import tqdm

from refinenet.train_state import Run
from refinenet.utils import slurm_cpus


class TrainingLog:
    """The progress bar and, on rank 0, `log.jsonl`: every `log_every` steps the mean loss since the last
    line, the learning rates, images/s and the estimated time left; validation scores in between."""

    def __init__(self, run: Run):
        self.run = run
        self.path = Path(run.cfg.out) / "log.jsonl" if run.is_main else None
        logged = last_logged_iteration(self.path) if self.path else None
        if self.path:
            self.path.touch()
        self.bar = tqdm(total=run.total, initial=run.iteration, disable=not (run.is_main and run.cfg.progress),
                        unit="it", dynamic_ncols=True)
        # Every session opens with a line saying where it starts and on what CPUs. A session that starts
        # before iterations the log already holds (killed before it reached a checkpoint) says so: those
        # lines were trained again, and the lines after this one replace them.
        session = {"iteration": run.iteration, "session_start": time.time(), "fast_path": run.fast_label,
                   "precision": run.record["precision"], "torch_threads": torch.get_num_threads(),
                   "workers": run.cfg.workers, "slurm_cpus_per_task": slurm_cpus(),
                   "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
        if logged is not None and logged > run.iteration:
            session["restart"] = (f"iterations {run.iteration + 1}-{logged} logged above were not checkpointed "
                                  f"and are trained again from iteration {run.iteration}")
        self.write(session)
        self._new_window()

    def _new_window(self) -> None:
        self.start, self.images, self.loss, self.steps = time.perf_counter(), 0, 0.0, 0

    def step(self, loss: float, lrs: list[float]) -> None:
        run = self.run
        self.loss, self.steps, self.images = self.loss + loss, self.steps + 1, self.images + run.images_per_step
        self.bar.update(1)
        if run.iteration % run.cfg.log_every and run.iteration != run.total:
            return
        speed = self.images / max(time.perf_counter() - self.start, 1e-9)
        record = {
            "iteration": run.iteration,
            "epoch": run.iteration * run.images_per_step / len(run.train_set),
            "loss": self.loss / self.steps,
            "lr": lrs[0],
            "backbone_lr": lrs[1],
            "images_per_s": speed,
            "eta_s": (run.total - run.iteration) * run.images_per_step / max(speed, 1e-9),
            "time": time.time(),
        }
        self.bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}", img_s=f"{speed:.2f}")
        self.write(record)
        self._new_window()

    def write(self, record: dict) -> None:
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self.bar.close()


def last_logged_iteration(path: Path) -> int | None:
    """The last training iteration `log.jsonl` reports a loss for (None: no such line)."""
    last = None
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if "loss" in record:
                    last = record["iteration"]
    return last
