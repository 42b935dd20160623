"""The RefineNet model: shapes of every variant, gradient flow, the paper's components."""

import pytest
import torch
import torchvision
from torch import nn

from refinenet.model import (
    BACKBONES,
    VARIANTS,
    ChainedResidualPooling,
    MultiResolutionFusion,
    RefineNet,
    RefineNetBlock,
    RefineNetConfig,
    ResidualConvUnit,
    build_refinenet,
)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_and_backbone_returns_scores_at_input_size(backbone, variant):
    torch.manual_seed(0)
    model = RefineNet(RefineNetConfig(num_classes=5, backbone=backbone, variant=variant)).eval()
    x = torch.randn(2, 3, 70, 90)  # not a multiple of 32 on purpose
    with torch.no_grad():
        full = model(x)
        coarse = model(x, upsample=False)
    assert full.shape == (2, 5, 70, 90)
    scale = VARIANTS[variant][1][0]  # the finest ResNet sees the image at this scale
    assert coarse.shape[-2:] == (round(70 * scale / 4 + 0.49), round(90 * scale / 4 + 0.49))


def test_upsample_false_returns_quarter_resolution_scores():
    model = RefineNet(RefineNetConfig(num_classes=3, backbone="resnet50")).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 128, 96), upsample=False).shape == (1, 3, 32, 24)


def test_gradient_reaches_first_backbone_layer_through_long_range_connections():
    torch.manual_seed(0)
    model = RefineNet(RefineNetConfig(num_classes=4, backbone="resnet50", dropout=0.0))
    model.train()
    model(torch.randn(1, 3, 64, 64)).sum().backward()
    backbone = model.backbones[0]
    assert backbone.conv1.weight.grad is not None and backbone.conv1.weight.grad.abs().sum() > 0
    # layer1's output reaches the classifier only through the finest path's long-range connection
    layer1_out = []
    handle = backbone.layer1.register_forward_hook(lambda m, i, o: layer1_out.append(o))
    model.zero_grad()
    out = model(torch.randn(1, 3, 64, 64))
    handle.remove()
    (grad,) = torch.autograd.grad(out.sum(), layer1_out[0], retain_graph=True)
    assert grad.abs().sum() > 0
    assert model.dimred[-1].in_channels == 256  # the finest path reads ResNet block-1


def test_residual_conv_unit_is_identity_plus_two_relu_conv_branch():
    torch.manual_seed(0)
    rcu = ResidualConvUnit(4)
    x = torch.randn(1, 4, 8, 8)
    branch = rcu.conv2(torch.relu(rcu.conv1(torch.relu(x))))
    torch.testing.assert_close(rcu(x), x + branch)
    assert rcu.conv1.bias is not None and rcu.conv2.bias is None


def _identity_conv(channels):
    conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        for c in range(channels):
            conv.weight[c, c, 1, 1] = 1.0
    return conv


def test_chained_residual_pooling_chains_pools_instead_of_pooling_the_input_in_parallel():
    crp = ChainedResidualPooling(1, blocks=2)
    crp.convs = nn.ModuleList([_identity_conv(1), _identity_conv(1)])
    x = torch.zeros(1, 1, 15, 15)
    x[0, 0, 7, 7] = 1.0
    out = crp(x)[0, 0]
    # two chained 5x5 max-pools reach a 9x9 window; two parallel ones would reach only 5x5
    assert out[7, 3] == 1.0 and out[7, 2] == 0.0
    assert out[7, 7] == 3.0  # input + both stages


def test_pool_order_switch_changes_the_computation():
    torch.manual_seed(0)
    a = ChainedResidualPooling(3, blocks=2, order="pool_conv")
    b = ChainedResidualPooling(3, blocks=2, order="conv_pool")
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 12, 12)
    assert not torch.allclose(a(x), b(x))


def test_zero_pooling_blocks_ablation_is_the_identity_without_the_relu():
    # released code (main/gen_network_pool_block.m): without pooling stages the block returns
    # before adding its leading ReLU
    crp = ChainedResidualPooling(3, blocks=0)
    x = torch.randn(1, 3, 6, 6)
    assert len(crp.convs) == 0 and (x < 0).any()
    assert torch.equal(crp(x), x)
    model = RefineNet(RefineNetConfig(num_classes=3, backbone="resnet50", pooling_blocks=0)).eval()
    seen = []
    handle = model.blocks[0].pool.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    handle.remove()
    assert seen[0][0].min() < 0 and torch.equal(seen[0][0], seen[0][1])


def test_fusion_adapts_depth_upsamples_to_largest_and_sums():
    fusion = MultiResolutionFusion([8, 4], 4)
    coarse, fine = torch.randn(1, 8, 4, 4), torch.randn(1, 4, 8, 8)
    out = fusion([coarse, fine])
    assert out.shape == (1, 4, 8, 8)
    up = nn.functional.interpolate(fusion.convs[0](coarse), size=(8, 8), mode="bilinear", align_corners=True)
    torch.testing.assert_close(out, up + fusion.convs[1](fine))
    single = MultiResolutionFusion([8], 8)
    torch.testing.assert_close(single([coarse]), coarse)


def test_refinenet_block_accepts_any_number_of_paths_of_any_size_and_depth():
    block = RefineNetBlock([512, 256, 128], [2, 2, 1], pooling_blocks=2, output_rcus=1)
    paths = [torch.randn(1, 512, 3, 3), torch.randn(1, 256, 12, 12), torch.randn(1, 128, 6, 6)]
    assert block(paths).shape == (1, 128, 12, 12)


def test_released_and_paper_layouts_place_the_rcus_as_documented():
    released = RefineNet(RefineNetConfig(num_classes=3, backbone="resnet50", block_layout="released"))
    paper = RefineNet(RefineNetConfig(num_classes=3, backbone="resnet50", block_layout="paper"))
    assert [len(b.output) for b in released.blocks] == [3, 3, 3, 3]
    assert [len(b.output) for b in paper.blocks] == [1, 1, 1, 3]  # + 2 before the classifier
    assert [len(a) for a in released.blocks[1].adapt] == [0, 2]  # cascade path, ResNet path
    assert [len(a) for a in paper.blocks[1].adapt] == [2, 2]
    assert released.blocks[0].out_channels == 512 and released.blocks[1].out_channels == 256


def test_filters_are_512_for_refinenet4_and_256_elsewhere():
    model = RefineNet(RefineNetConfig(num_classes=3, backbone="resnet50"))
    assert [d.out_channels for d in model.dimred] == [512, 256, 256, 256]
    assert [d.in_channels for d in model.dimred] == [2048, 1024, 512, 256]


def test_two_scale_variant_has_two_independent_backbones_and_fuses_level_k_of_both():
    model = RefineNet(RefineNetConfig(num_classes=3, backbone="resnet50", variant="4-cascaded-2-scale"))
    assert len(model.backbones) == 2
    assert model.backbones[0].conv1.weight.data_ptr() != model.backbones[1].conv1.weight.data_ptr()
    assert [(b, m) for b, _, m in model.paths] == [(0, 4), (0, 4), (1, 3), (1, 3), (2, 2), (2, 2), (3, 1), (3, 1)]
    # relative to the model's input, which the input scale (released: 1.2) has already rescaled
    assert model.config.input_scales == (1.0, 0.5)


def test_frozen_batchnorm_stays_in_eval_mode_and_keeps_its_statistics():
    model = RefineNet(RefineNetConfig(num_classes=3, backbone="resnet50", freeze_batchnorm=True))
    model.train()
    bn = model.backbones[0].bn1
    before = bn.running_mean.clone()
    model(torch.randn(1, 3, 64, 64) * 5 + 3)
    assert not bn.training
    torch.testing.assert_close(bn.running_mean, before)
    trainable = RefineNet(RefineNetConfig(num_classes=3, backbone="resnet50", freeze_batchnorm=False)).train()
    assert trainable.backbones[0].bn1.training


def test_dropout_is_active_in_training_and_off_in_eval():
    torch.manual_seed(0)
    model = RefineNet(RefineNetConfig(num_classes=3, backbone="resnet50", dropout=0.5))
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))
        model.train()
        assert not torch.allclose(model(x), model(x))


def test_parameter_groups_split_backbone_from_new_layers():
    model = RefineNet(RefineNetConfig(num_classes=3, backbone="resnet50"))
    groups = model.parameter_groups()
    assert len(groups["backbone"]) + len(groups["refine"]) == len(list(model.parameters()))
    refine_ids = {id(p) for p in groups["refine"]}
    backbone_ids = {id(p) for p in groups["backbone"]}
    assert id(model.classifier.weight) in refine_ids and id(model.backbones[0].conv1.weight) in backbone_ids


def test_bad_configuration_is_rejected_with_the_allowed_values():
    with pytest.raises(ValueError, match="variant must be one of"):
        RefineNetConfig(num_classes=3, variant="3-cascaded")
    with pytest.raises(ValueError, match="backbone must be one of"):
        RefineNetConfig(num_classes=3, backbone="resnet34")


def test_backbone_weights_load_from_a_local_torchvision_file(tmp_path):
    torch.manual_seed(1)
    resnet = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(resnet.state_dict(), path)
    model = build_refinenet(3, backbone="resnet50", backbone_weights=path)
    torch.testing.assert_close(model.backbones[0].layer4[2].conv3.weight, resnet.layer4[2].conv3.weight)


def test_missing_backbone_file_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        build_refinenet(3, backbone="resnet50", backbone_weights=tmp_path / "nothere.pth")


def test_uncached_imagenet_weights_without_network_say_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache
    weights_type = type(torchvision.models.ResNet50_Weights.IMAGENET1K_V1)

    def offline(self, *args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(weights_type, "get_state_dict", offline)
    with pytest.raises(RuntimeError, match="--backbone-weights") as err:
        build_refinenet(3, backbone="resnet50", backbone_weights="IMAGENET1K_V1")
    assert "resnet50-" in str(err.value) and str(tmp_path) in str(err.value)


def _new_layer_convs(model):
    backbone = {id(m) for m in model.backbones.modules()}
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and id(m) not in backbone]


def test_new_layers_start_from_the_released_codes_gaussian_with_zero_biases():
    torch.manual_seed(0)
    model = RefineNet(RefineNetConfig(num_classes=5, backbone="resnet50", pooling_blocks=2))
    convs = _new_layer_convs(model)
    assert model.classifier in convs and len(convs) == len(model.dimred) + 1 + sum(
        isinstance(m, nn.Conv2d) for m in model.blocks.modules())
    weights = torch.cat([c.weight.detach().flatten() for c in convs])
    assert abs(weights.mean().item()) < 1e-4 and abs(weights.std().item() - 0.01) < 1e-4  # main/My_net_util.m
    for conv in convs:
        assert abs(conv.weight.std().item() - 0.01) < 2e-3, conv
        assert conv.bias is None or torch.equal(conv.bias, torch.zeros_like(conv.bias))
    # the ResNet keeps its own (torchvision's) initialisation
    assert model.backbones[0].conv1.weight.std() > 0.02  # kaiming-normal, fan-out: 0.025


def test_pytorch_default_initialisation_stays_available():
    torch.manual_seed(0)
    for init in ("pytorch", None):
        model = RefineNet(RefineNetConfig(num_classes=5, backbone="resnet50", new_layer_init=init))
        assert model.config.new_layer_init == "pytorch"
        assert model.classifier.bias.abs().sum() > 0  # PyTorch's uniform bias, not zeros
        assert model.dimred[0].weight.std() < 0.005  # kaiming-uniform with a = sqrt(5): 1 / sqrt(3 fan_in)
    with pytest.raises(ValueError, match="new_layer_init must be one of"):
        RefineNetConfig(num_classes=3, new_layer_init="xavier")
