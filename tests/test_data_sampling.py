"""The training sample stream: seeded, resumable mid-epoch, split across processes; the authors'
class-balanced epochs (guosheng/refinenet main/my_epoch_run_config.m)."""

from __future__ import annotations

import numpy as np

from refinenet.data.class_index import images_per_class
from refinenet.data.sampling import ClassBalancedEpochs, ResumableSampler


def test_sampler_is_seeded_resumable_and_sharded():
    stream = lambda s: [x for _, x in zip(range(12), s)]  # noqa: E731
    full = stream(ResumableSampler(5, seed=3))
    assert full == stream(ResumableSampler(5, seed=3))
    assert stream(ResumableSampler(5, seed=3, start=7))[:5] == full[7:12]
    assert sorted(i for i, _ in full[:5]) == list(range(5))  # each epoch is a permutation
    ranks = [[i for i, _ in stream(ResumableSampler(6, seed=0, rank=r, world=2))][:3] for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == list(range(6))


def _skewed_classes(n=60, seed=0):
    """Class 0 in every image, class 1 in most, classes 2-4 rare: a long-tailed split."""
    rng = np.random.default_rng(seed)
    classes = []
    for _ in range(n):
        present = {0}
        if rng.random() < 0.8:
            present.add(1)
        if rng.random() < 0.15:
            present.add(int(rng.integers(2, 5)))
        classes.append(tuple(sorted(present)))
    return classes


def test_class_balanced_epoch_takes_images_until_every_class_is_covered():
    classes = _skewed_classes()
    epochs = ClassBalancedEpochs(classes, 5, seed=1, per_class=3, min_images=10, max_images=40)
    epoch = epochs(0)
    assert len(set(epoch)) == len(epoch) and 10 <= len(epoch) <= 40
    counts = images_per_class([classes[i] for i in epoch], 5)
    assert counts.min() >= 3  # every class reached its quota (each rare class appears in >= 3 images)
    # rare classes are over-represented relative to the split: the epoch is closer to uniform
    split = images_per_class(classes, 5)
    assert counts[2:].sum() / counts.sum() > 1.5 * split[2:].sum() / split.sum()
    assert epochs(0) == epoch and ClassBalancedEpochs(classes, 5, seed=1, per_class=3, min_images=10,
                                                      max_images=40)(0) == epoch  # a function of (seed, epoch)


def test_class_balanced_epochs_top_up_cap_and_prefer_unused_images():
    classes = [(0,)] * 30
    topped = ClassBalancedEpochs(classes, 1, seed=0, per_class=2, min_images=8, max_images=20)
    assert len(topped(0)) == 8  # 2 images cover the quota; topped up to min_images
    rotated = ClassBalancedEpochs(classes, 1, seed=0, per_class=2, min_images=10, max_images=20)
    first, second, third = (set(rotated(e)) for e in range(3))
    assert not first & second and not (first | second) & third  # images not used yet come first
    capped = ClassBalancedEpochs([(c % 5,) for c in range(100)], 5, seed=0, per_class=30, min_images=10,
                                 max_images=25)
    assert len(capped(0)) == 25
    small = ClassBalancedEpochs(classes, 1, seed=0, min_images=1000)
    assert sorted(small(0)) == list(range(30))  # a split of <= min_images images is used whole


def test_sampler_with_class_balanced_epochs_resumes_and_shards():
    epochs = ClassBalancedEpochs(_skewed_classes(), 5, seed=2, per_class=3, min_images=9, max_images=40)
    stream = lambda s, n=40: [x for _, x in zip(range(n), s)]  # noqa: E731
    full = stream(ResumableSampler(60, seed=2, epochs=epochs))
    assert [i for i, _ in full[: len(epochs(0))]] == epochs(0)
    assert stream(ResumableSampler(60, seed=2, start=23, epochs=epochs), 17) == full[23:]
    shards = [[i for i, _ in stream(ResumableSampler(60, seed=2, rank=r, world=2, epochs=epochs), 4)] for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == sorted(epochs(0)[:8])
