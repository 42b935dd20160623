"""The order of the training data: a seeded, resumable sample stream split across processes, and
augmentation seeded per sample. Together they give a resumed run exactly the crops of an
uninterrupted one, whatever the number of loader workers.

An epoch is either a shuffle of the whole split, or the authors' class-balanced selection
(`ClassBalancedEpochs`). Both are pure functions of (seed, epoch), so every process and every
resumed run computes the same epochs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch


class ResumableSampler(torch.utils.data.Sampler):
    """An endless stream of (index, sample seed), one epoch after another.

    Epoch e's order is `epochs(e)` (default: `randperm(size)` from a generator seeded with (seed, e)),
    padded to a multiple of the world size and split by rank (as DistributedSampler does). `start`
    skips the samples this rank already consumed, so a resumed run sees exactly the images an
    uninterrupted one would. Each sample carries its own seed, so its augmentation does not depend
    on workers or timing.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1, start: int = 0,
                 epochs: Callable[[int], list[int]] | None = None):
        self.size, self.seed, self.rank, self.world, self.start = size, seed, rank, world, start
        self.epochs = epochs or self.shuffled_epoch

    def shuffled_epoch(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=g).tolist()

    def epoch_order(self, epoch: int) -> list[int]:
        """This rank's share of epoch `epoch`."""
        order = list(self.epochs(epoch))
        per_rank = math.ceil(len(order) / self.world)
        order += order[: per_rank * self.world - len(order)]
        return order[self.rank :: self.world]

    def __iter__(self):
        epoch, offset = 0, self.start
        order = self.epoch_order(epoch)
        while offset >= len(order):  # skip the epochs a resumed run has finished
            epoch, offset = epoch + 1, offset - len(order)
            order = self.epoch_order(epoch)
        while True:
            for position in range(offset, len(order)):
                sample_seed = (self.seed * 1_000_003 + epoch) * 1_000_003 + position * self.world + self.rank
                yield order[position], sample_seed % (2**63)
            epoch, offset = epoch + 1, 0
            order = self.epoch_order(epoch)


class ClassBalancedEpochs:
    """The authors' epochs ('class_sample', guosheng/refinenet main/my_epoch_run_config.m): `epochs(e)`
    is epoch e's list of image indices.

    A split of at most `min_images` images is used whole, shuffled. A larger one is walked in a shuffled
    order, images not yet used since the last reset first: an image is taken if any class it contains
    has been counted fewer than `per_class` times this epoch, and then counts for each of its classes;
    the walk stops once every class has `per_class`. Fewer than `min_images` taken: topped up with
    skipped images in walk order; more than `max_images`: a random `max_images` of them. An image
    taken leaves the "not yet used" set, which refills once empty. The epoch is shuffled once more.

    `image_classes[i]`: the classes in image i, void left out (refinenet.data.class_index).
    """

    def __init__(self, image_classes: Sequence[Sequence[int]], num_classes: int, seed: int, per_class: int = 100,
                 min_images: int = 1000, max_images: int = 2000):
        if not 0 < min_images <= max_images or per_class < 1:
            raise ValueError(f"need 0 < min_images <= max_images and per_class >= 1, got {min_images}, "
                             f"{max_images}, {per_class}")
        self.image_classes = [tuple(c) for c in image_classes]
        self.num_classes, self.seed, self.per_class = num_classes, seed, per_class
        self.min_images, self.max_images = min_images, max_images
        self._epochs: list[list[int]] = []
        self._unused = np.ones(len(self.image_classes), dtype=bool)

    def __call__(self, epoch: int) -> list[int]:
        while len(self._epochs) <= epoch:  # each epoch depends on the ones before (the "unused" set)
            self._epochs.append(self._compose(len(self._epochs)))
        return self._epochs[epoch]

    def _compose(self, epoch: int) -> list[int]:
        rng = np.random.default_rng([self.seed, epoch, 0xC1A55])
        if len(self.image_classes) <= self.min_images:
            return rng.permutation(len(self.image_classes)).tolist()
        walk = np.concatenate([rng.permutation(np.flatnonzero(self._unused)),
                               rng.permutation(np.flatnonzero(~self._unused))]).tolist()
        taken = self._walk(walk)
        if len(taken) < self.min_images:
            chosen = set(taken)
            taken += [i for i in walk if i not in chosen][: self.min_images - len(taken)]
        elif len(taken) > self.max_images:
            taken = rng.permutation(taken)[: self.max_images].tolist()
        self._unused[taken] = False
        if not self._unused.any():
            self._unused[:] = True
        return rng.permutation(taken).tolist()

    def _walk(self, walk: list[int]) -> list[int]:
        counts, short = [0] * self.num_classes, self.num_classes  # `short`: classes below per_class
        taken = []
        for index in walk:
            classes = self.image_classes[index]
            if not any(counts[c] < self.per_class for c in classes):
                continue
            taken.append(index)
            for c in classes:
                counts[c] += 1
                short -= counts[c] == self.per_class
            if short == 0:
                break
        return taken


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
