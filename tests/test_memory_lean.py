"""RefineNetConfig.memory_lean: same numbers as the default, less activation memory kept."""

import sys
from pathlib import Path

import pytest
import torch

from refinenet.model import ChainedResidualPooling, MultiResolutionFusion, ResidualConvUnit, build_refinenet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.efficiency.memory import SavedActivations  # noqa: E402


def _train_step(memory_lean: bool, freeze_batchnorm: bool = True):
    torch.manual_seed(0)
    # Narrow refine paths keep the test fast; the checkpointing and in-place code paths are the same.
    model = build_refinenet(5, backbone="resnet50", pooling_blocks=4, dropout=0.5, memory_lean=memory_lean,
                            freeze_batchnorm=freeze_batchnorm, features=32, top_features=64).train()
    torch.manual_seed(1)  # same input and the same dropout masks for both runs
    x = torch.randn(2, 3, 32, 32)
    target = torch.randint(0, 5, (2, 32, 32))
    out = model(x)
    torch.nn.functional.cross_entropy(out, target).backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    return out.detach(), grads, {name: b.clone() for name, b in model.named_buffers()}


@pytest.mark.parametrize("freeze_batchnorm", [True, False])
def test_memory_lean_gives_identical_outputs_and_gradients(freeze_batchnorm):
    out, grads, buffers = _train_step(False, freeze_batchnorm)
    lean_out, lean_grads, lean_buffers = _train_step(True, freeze_batchnorm)
    assert out.abs().sum() > 0
    torch.testing.assert_close(lean_out, out, rtol=1e-6, atol=1e-7)
    assert lean_grads.keys() == grads.keys()
    for name, grad in grads.items():
        assert grad is not None, name
        torch.testing.assert_close(lean_grads[name], grad, rtol=1e-6, atol=1e-7, msg=lambda m, n=name: f"{n}: {m}")
    for name, buffer in buffers.items():  # BN running statistics are not updated twice by recomputation
        torch.testing.assert_close(lean_buffers[name], buffer, rtol=0, atol=0)


def test_memory_lean_is_the_same_in_eval_mode():
    torch.manual_seed(0)
    model = build_refinenet(3, backbone="resnet50", pooling_blocks=2, features=32, top_features=64).eval()
    lean = build_refinenet(3, backbone="resnet50", pooling_blocks=2, features=32, top_features=64,
                           memory_lean=True).eval()
    lean.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 32, 48)
    with torch.inference_mode():
        torch.testing.assert_close(lean(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("module", [ResidualConvUnit(8), MultiResolutionFusion([8, 8], 8),
                                    ChainedResidualPooling(8, 3), ChainedResidualPooling(8, 3, "conv_pool")])
def test_in_place_paths_match(module):
    torch.manual_seed(0)
    inputs = [torch.randn(1, 8, 12, 12, requires_grad=True), torch.randn(1, 8, 6, 6, requires_grad=True)]
    call = (lambda m, xs: m(xs)) if isinstance(module, MultiResolutionFusion) else (lambda m, xs: m(xs[0]))
    results = []
    for inplace in (False, True):
        module.inplace = inplace
        module.zero_grad()
        for x in inputs:
            x.grad = None
        out = call(module, inputs)
        out.square().sum().backward()
        results.append((out.detach(), [x.grad for x in inputs], [p.grad.clone() for p in module.parameters()]))
    (out, xg, pg), (lean_out, lean_xg, lean_pg) = results
    torch.testing.assert_close(lean_out, out, rtol=0, atol=0)
    for a, b in zip(lean_xg + lean_pg, xg + pg):
        if b is None:
            assert a is None
        else:
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def _counted_bytes(memory_lean: bool, size: int) -> int:
    with torch.device("meta"):
        model = build_refinenet(21, backbone="resnet50", pooling_blocks=4, memory_lean=memory_lean).train()
    with SavedActivations(model) as saved:
        model(torch.empty(1, 3, size, size, device="meta"))
    return saved.bytes


def test_memory_lean_keeps_far_fewer_activations():
    default, lean = _counted_bytes(False, 128), _counted_bytes(True, 128)
    assert lean < 0.5 * default, (lean, default)
