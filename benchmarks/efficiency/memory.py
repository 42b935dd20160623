"""Counting the memory a training step keeps for the backward pass, exactly and on any device.

`SavedActivations` records every tensor autograd saves during a forward pass (saved-tensor
hooks) and adds up their storages once each, leaving out the model's parameters and buffers.
This is the activation memory that the paper's argument is about (Sec. 2, Fig. 2): it grows with
the resolution of the feature maps kept for the backward pass. It works on the meta device too,
so whole sweeps are counted without computing anything.

Under non-reentrant activation checkpointing the tensors saved inside a checkpointed region
are packed by the checkpoint's own (inner) hooks and dropped; only the region's inputs, which
the checkpoint saves under ours, are kept and counted.
"""

from __future__ import annotations

import resource
from collections.abc import Iterable

import torch


def _storage_key(tensor: torch.Tensor) -> int:
    # The StorageImpl's address: unique while the storage is alive (we keep a reference), and it
    # works for meta tensors, whose data pointers are all 0.
    return tensor.untyped_storage()._cdata


class SavedActivations:
    """`with SavedActivations(model) as saved: loss = model(x)...` then `saved.bytes`, `saved.count`."""

    def __init__(self, exclude: Iterable[torch.Tensor] | torch.nn.Module = ()):
        if isinstance(exclude, torch.nn.Module):
            exclude = [*exclude.parameters(), *exclude.buffers()]
        self._excluded = {_storage_key(t) for t in exclude}
        self._storages: dict[int, int] = {}
        self._keep: list[torch.Tensor] = []
        self.count = 0  # saved tensors, before deduplication
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        self.count += 1
        key = _storage_key(tensor)
        if key not in self._excluded and key not in self._storages:
            self._storages[key] = tensor.untyped_storage().nbytes()
            self._keep.append(tensor)  # keeps the storage (and its key) alive until we are done
        return tensor

    @property
    def bytes(self) -> int:
        return sum(self._storages.values())

    def __enter__(self) -> SavedActivations:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
        self._keep.clear()


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
