"""One full-size file: the authors' RefineNet-101 for VOC as cnn_save_model.m writes it (about 450 MB, MATLAB
v7.3), converted and self-checked as a user's file would be. Slow by design (about a minute on 2 cores,
most of it writing the file; README "The authors' MatConvNet models"): the reduced-width tests cannot show
that the reader copes with the real file's size and layer count."""

from __future__ import annotations

import time

import matconvnet_files as mf

from refinenet.convert import convert_trained

# refinenet101_voc.pth.tar's parameters (the conversion's reference listing), plus the MSRA conv1 bias (64)
# and the void output of the authors' 22-output classifier (3 x 3 x 256 weights + 1 bias)
EXPECTED_PARAMETERS = 118_052_437 + 64 + 2_305


def test_a_full_size_resnet_101_voc_file_converts_and_passes_its_self_check(tmp_path):
    path = tmp_path / "refinenet_res101_voc2012.mat"
    mf.write_refinenet_mat(path, depth=101, num_classes=22, pooling_blocks=4, pool_order="pool_conv")
    start = time.perf_counter()
    conversion = convert_trained(path)
    seconds = time.perf_counter() - start
    print(f"full-size RefineNet-101 ({path.stat().st_size / 1e6:.0f} MB): converted in {seconds:.1f} s")
    model = conversion.model
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMETERS
    assert (model.config.backbone, model.config.resnet_width, model.config.features) == ("resnet101", 64, 256)
    assert conversion.checkpoint["self_check"]["relative"] < 1e-4
