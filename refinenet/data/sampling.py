"""The order of the training data: a seeded, resumable sample stream split across processes, and
augmentation seeded per sample. Together they give a resumed run exactly the crops of an
uninterrupted one, whatever the number of loader workers.
"""

from __future__ import annotations

import math

import torch


class ResumableSampler(torch.utils.data.Sampler):
    """An endless stream of (index, sample seed), one shuffled epoch after another.

    Epoch e's order is `randperm(n)` from a generator seeded with (seed, e), padded to a multiple of
    the world size and split by rank (as DistributedSampler does). `start` skips the samples this
    rank already consumed, so a resumed run sees exactly the images an uninterrupted one would.
    Each sample carries its own seed, so its augmentation does not depend on workers or timing.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1, start: int = 0):
        self.size, self.seed, self.rank, self.world, self.start = size, seed, rank, world, start
        self.per_rank = math.ceil(size / world)

    def epoch_order(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.size, generator=g).tolist()
        order += order[: self.per_rank * self.world - self.size]
        return order[self.rank :: self.world]

    def __iter__(self):
        epoch, offset = divmod(self.start, self.per_rank)
        while True:
            order = self.epoch_order(epoch)
            for position in range(offset, self.per_rank):
                sample_seed = (self.seed * 1_000_003 + epoch) * 1_000_003 + position * self.world + self.rank
                yield order[position], sample_seed % (2**63)
            epoch, offset = epoch + 1, 0


class SeededAugmentation(torch.utils.data.Dataset):
    """Applies `transform` to dataset[index] under the sample's own seed (the global RNG is left alone)."""

    def __init__(self, dataset, transform):
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, sample_seed = key
        image, label = self.dataset[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed)
            return self.transform(image, label)
