"""Fast paths: the per-machine CPU layout (fake timers, no timed assertions), the precision policy,
what runs record, and dropout that does not depend on the memory format."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from refinenet.model import LayoutIndependentDropout, build_refinenet


def test_dropout_mask_does_not_depend_on_the_memory_format():
    x = torch.randn(2, 16, 5, 7)
    dropout = LayoutIndependentDropout(0.5).train()
    torch.manual_seed(3)
    reference = F.dropout(x, 0.5, training=True)  # nn.Dropout on an NCHW tensor
    torch.manual_seed(3)
    nchw = dropout(x)
    torch.manual_seed(3)
    channels_last = dropout(x.contiguous(memory_format=torch.channels_last))
    assert torch.equal(nchw, reference) and torch.equal(channels_last, reference)
    assert channels_last.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(dropout.eval()(x), x)


def test_frozen_batchnorm_training_step_agrees_across_layouts():
    # With dropout on: nn.Dropout would drop other units under channels_last (gradients ~80% apart).
    torch.manual_seed(0)
    model = build_refinenet(5, backbone="resnet50", features=32, top_features=64, freeze_batchnorm=True)
    x, target = torch.randn(2, 3, 64, 64), torch.randint(0, 5, (2, 64, 64))

    def gradients(channels_last: bool) -> torch.Tensor:
        net = copy.deepcopy(model).train()
        inputs = x
        if channels_last:
            net, inputs = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        torch.manual_seed(1)
        F.cross_entropy(net(inputs), target).backward()
        return torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])

    nchw, channels_last = gradients(False), gradients(True)
    assert float((channels_last - nchw).norm() / nchw.norm()) < 1e-2
