"""The training sample stream: seeded, resumable mid-epoch, split across processes."""

from __future__ import annotations

from refinenet.data.sampling import ResumableSampler


def test_sampler_is_seeded_resumable_and_sharded():
    stream = lambda s: [x for _, x in zip(range(12), s)]  # noqa: E731
    full = stream(ResumableSampler(5, seed=3))
    assert full == stream(ResumableSampler(5, seed=3))
    assert stream(ResumableSampler(5, seed=3, start=7))[:5] == full[7:12]
    assert sorted(i for i, _ in full[:5]) == list(range(5))  # each epoch is a permutation
    ranks = [[i for i, _ in stream(ResumableSampler(6, seed=0, rank=r, world=2))][:3] for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == list(range(6))
