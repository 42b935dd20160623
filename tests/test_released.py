"""The authors' released checkpoints: names, shapes, parameter counts and computation."""

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision

from refinenet import RefineNet, RefineNetConfig, load_released, to_released_state_dict

# The released checkpoints (DrSleep/refinenet-pytorch conversions): backbone, classes, tensors, parameters.
RELEASED = {
    "refinenet50_voc": ("resnet50", 21, 406, 99_060_309),
    "refinenet101_voc": ("resnet101", 21, 712, 118_052_437),
    "refinenet152_voc": ("resnet152", 21, 1018, 133_696_085),
    "refinenet50_nyu": ("resnet50", 40, 406, 99_104_104),
    "refinenet101_nyu": ("resnet101", 40, 712, 118_096_232),
    "refinenet152_nyu": ("resnet152", 40, 1018, 133_739_880),
}


def read_tsv(shared_dir, name):
    rows = (shared_dir / "reference" / "released-checkpoints" / f"{name}.tsv").read_text().splitlines()[1:]
    return [(n, tuple(int(d) for d in s.split("x") if d)) for n, s in (r.split("\t") for r in rows)]


def random_state_dict(entries, seed=0):
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in entries:
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(0)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=gen) + 0.5
        elif name.endswith("running_mean"):
            state[name] = torch.randn(shape, generator=gen) * 0.1
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
            state[name] = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
    return state


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_layout_parameter_counts_match_the_reference_table(name):
    backbone, classes, tensors, params = RELEASED[name]
    model = RefineNet(RefineNetConfig(num_classes=classes, backbone=backbone, pooling_blocks=4))
    assert len(model.state_dict()) == tensors
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_format_state_dict_loads_strictly_and_runs(shared_dir, name):
    entries = read_tsv(shared_dir, name)
    backbone, classes, tensors, params = RELEASED[name]
    assert len(entries) == tensors
    state = random_state_dict(entries)
    model = load_released({"model": state})
    assert model.config.backbone == backbone and model.config.num_classes == classes
    assert model.config.pooling_blocks == 4 and not model.training
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, classes, 64, 64) and torch.isfinite(out).all()
    exported = to_released_state_dict(model)
    assert list(exported) != [] and set(exported) == {n for n, _ in entries}
    for n, shape in entries:
        assert tuple(exported[n].shape) == shape


def test_released_tsv_parameter_totals_equal_the_reference_table(shared_dir):
    for name, (_, _, _, params) in RELEASED.items():
        entries = read_tsv(shared_dir, name)
        buffers = ("running_mean", "running_var", "num_batches_tracked")
        total = sum(math.prod(s) for n, s in entries if not n.endswith(buffers))
        assert total == params, name


def reference_forward(state, x):
    """The computation the released weights expect, written independently from the released-checkpoint
    reference notes of the `shared_dir` fixture (eval mode: dropout is the identity)."""
    resnet = torchvision.models.resnet50(weights=None).eval()
    resnet.load_state_dict({k: v for k, v in state.items() if k.startswith(("conv1", "bn1", "layer"))},
                           strict=False)
    h = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))
    l1 = resnet.layer1(h)
    l2 = resnet.layer2(l1)
    l3 = resnet.layer3(l2)
    l4 = resnet.layer4(l3)

    def conv(t, name, bias=False):
        return F.conv2d(t, state[name + ".weight"], state[name + ".bias"] if bias else None, padding=1)

    def rcus(t, prefix, n):
        for i in range(1, n + 1):
            t = t + conv(F.relu(conv(F.relu(t), f"{prefix}.0.{i}_conv", bias=True)),
                         f"{prefix}.0.{i}_conv_relu_varout_dimred")
        return t

    def crp(t, prefix, n):
        top = t
        for i in range(1, n + 1):
            top = conv(F.max_pool2d(top, 5, stride=1, padding=2), f"{prefix}.0.{i}_outvar_dimred")
            t = t + top
        return t

    previous = None
    for stage, feat in zip((1, 2, 3, 4), (l4, l3, l2, l1)):
        x_k = rcus(conv(feat, f"p_ims1d2_outl{stage}_dimred"), f"adapt_stage{stage}_b", 2)
        if previous is not None:
            x_k = conv(x_k, f"adapt_stage{stage}_b2_joint_varout_dimred")
            coarse = conv(previous, f"mflow_conv_g{stage - 1}_b3_joint_varout_dimred")
            x_k = x_k + F.interpolate(coarse, size=x_k.shape[-2:], mode="bilinear", align_corners=True)
        x_k = crp(F.relu(x_k), f"mflow_conv_g{stage}_pool", 4)
        previous = rcus(x_k, f"mflow_conv_g{stage}_b", 3)
    return conv(previous, "clf_conv", bias=True)


def test_released_weights_compute_exactly_what_the_published_model_definition_does(shared_dir):
    torch.manual_seed(0)
    state = random_state_dict(read_tsv(shared_dir, "refinenet50_voc"), seed=3)
    model = load_released(state)
    x = torch.randn(1, 3, 80, 112)
    with torch.no_grad():
        ours = model(x, upsample=False)
        expected = reference_forward(state, x)
    assert ours.shape == expected.shape == (1, 21, 20, 28)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_loading_a_file_with_a_model_key_and_module_prefix(tmp_path, shared_dir):
    state = random_state_dict(read_tsv(shared_dir, "refinenet50_nyu"))
    path = tmp_path / "refinenet50_nyu.pth.tar"
    torch.save({"model": {"module." + k: v for k, v in state.items()}, "epoch": 10}, path)
    model = load_released(path)
    torch.testing.assert_close(model.classifier.weight, state["clf_conv.weight"])


def test_a_state_dict_missing_tensors_is_rejected_naming_them(shared_dir):
    state = random_state_dict(read_tsv(shared_dir, "refinenet50_voc"))
    del state["mflow_conv_g2_pool.0.1_outvar_dimred.weight"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="extra.weight"):
        load_released(state)


def test_something_else_than_a_released_checkpoint_is_rejected():
    with pytest.raises(ValueError, match="not a released RefineNet state dict"):
        load_released({"fc.weight": torch.zeros(2, 2)})
