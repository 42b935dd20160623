"""The `paper` profile and released checkpoints follow the authors' pipeline (docs/protocol.md): each
setting pinned where it acts, observed on the model's own layers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from refinenet import data
from refinenet import loss as loss_module
from refinenet.checkpoint import load_model
from refinenet.config import EvalConfig, PredictConfig, TrainConfig, resolve
from refinenet.evaluate import evaluate
from refinenet.inference import image_probs
from refinenet.loss import training_scores
from refinenet.model import RefineNet, RefineNetConfig, build_refinenet
from refinenet.predict import predict
from refinenet.released import to_released_state_dict
from refinenet.train import train


class Seen(Exception):
    """Raised by the hook once it has seen the backbone's input: the (large) forward is not needed."""


def first_conv_input(run) -> tuple[int, int]:
    """The size of what the first conv of a ResNet (3 input channels) receives while `run()` runs."""
    seen = []

    def hook(module, args):
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            seen.append(tuple(args[0].shape[-2:]))
            raise Seen

    handle = nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        with pytest.raises(Seen):
            run()
    finally:
        handle.remove()
    return seen[0]


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    """Stand-in VOC at 120 x 160 (short edge 120) and a checkpoint trained with the authors' clamp and scale."""
    root = tmp_path_factory.mktemp("voc")
    data.write_standin("voc2012", root, train=2, val=2, size=(120, 160), seed=3)
    cfg = TrainConfig(dataset="voc2012", data_root=root, out=tmp_path_factory.mktemp("run"), profile="smoke",
                      backbone="resnet50", crop_size=32, iterations=1, workers=0, progress=False,
                      short_edge_clamp=True, input_scale=1.2)
    return root, train(cfg)


def test_paper_profile_is_the_authors_protocol():
    paper = resolve(TrainConfig("voc2012", "x", "y"))
    assert paper.input_scale == 1.2 and paper.short_edge_clamp and paper.train_short_edge == (450, 1100)
    assert paper.loss_at == "score_map" and paper.class_balanced and not paper.pad_crops
    assert paper.new_layer_init == "gaussian"
    assert data.dataset_info("voc2012").test_short_edge == (450, 800)
    assert data.dataset_info("cityscapes").test_short_edge == (600, 1100)
    standin = resolve(TrainConfig("voc2012", "x", "y", profile="standin"))
    assert standin.input_scale == 1.0 and not standin.short_edge_clamp and not standin.class_balanced
    assert standin.new_layer_init == "pytorch" and standin.loss_at == "input"
    chosen = resolve(TrainConfig("voc2012", "x", "y", profile="standin", new_layer_init="gaussian"))
    assert chosen.new_layer_init == "gaussian"


def test_evaluation_of_a_paper_checkpoint_clamps_the_short_edge_then_applies_the_input_scale(voc, tmp_path):
    root, ckpt = voc
    _, meta = load_model(ckpt)
    assert meta["input_scale"] == 1.2 and meta["short_edge_clamp"]
    config = EvalConfig(ckpt, "voc2012", root, workers=0, progress=False)
    # 120 x 160 -> 450 x 600 (VOC's clamp, main/demo_predict_mscale_voc.m) -> x 1.2
    assert first_conv_input(lambda: evaluate(config)) == (540, 720)
    image = sorted((root / "VOCdevkit/VOC2012/JPEGImages").glob("*.jpg"))[0]
    assert first_conv_input(lambda: predict(PredictConfig([image], ckpt, tmp_path / "p"))) == (540, 720)
    # overrides: a test scale multiplies the clamped size; the clamp can be switched off
    assert first_conv_input(lambda: evaluate(EvalConfig(ckpt, "voc2012", root, scales=(0.5,), workers=0,
                                                        progress=False))) == (270, 360)
    assert first_conv_input(lambda: evaluate(EvalConfig(ckpt, "voc2012", root, short_edge_clamp=False,
                                                        input_scale=1.0, workers=0, progress=False))) == (120, 160)


def test_metrics_record_the_clamp_applied(voc, tmp_path):
    root, ckpt = voc
    evaluate(EvalConfig(ckpt, "voc2012", root, short_edge=(130, 200), input_scale=1.0, out=tmp_path, workers=0,
                        progress=False))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["short_edge"] == [130, 200] and metrics["input_scale"] == 1.0
    assert 0 <= metrics["miou_present"] <= 1


def test_released_checkpoints_are_evaluated_with_the_authors_test_pipeline(voc, tmp_path):
    root, _ = voc
    path = tmp_path / "refinenet50_voc.pth.tar"
    torch.save(to_released_state_dict(build_refinenet(21, backbone="resnet50", pooling_blocks=4)), path)
    _, meta = load_model(path)
    assert meta["source"] == "released" and meta["input_scale"] == 1.2 and meta["short_edge_clamp"]
    assert first_conv_input(lambda: evaluate(EvalConfig(path, "voc2012", root, workers=0, progress=False))) \
        == (540, 720)


def test_both_backbones_of_the_two_scale_variant_see_the_input_scale_times_one_and_a_half():
    torch.manual_seed(0)
    model = RefineNet(RefineNetConfig(num_classes=3, backbone="resnet50", variant="4-cascaded-2-scale")).eval()
    sizes = []
    for backbone in model.backbones:
        backbone.conv1.register_forward_pre_hook(lambda m, args: sizes.append(tuple(args[0].shape[-2:])))
    with torch.no_grad():
        training_scores(model, torch.randn(1, 3, 50, 100), input_scale=1.2)
        image_probs(model, torch.randn(1, 3, 50, 100), input_scale=1.2)
    assert sizes == [(60, 120), (30, 60)] * 2  # as Sec. 4.3's 1.2 and 0.6; other rows see 1.2 alone


def test_a_training_step_compares_the_score_map_with_labels_of_its_size(tmp_path, monkeypatch):
    root = tmp_path / "voc"
    data.write_standin("voc2012", root, train=2, val=1, size=(48, 64), seed=0)
    shapes = []
    real = loss_module.shrink_labels
    monkeypatch.setattr(loss_module, "shrink_labels", lambda t, s: shapes.append((t.shape, s)) or real(t, s))
    train(TrainConfig(dataset="voc2012", data_root=root, out=tmp_path / "run", profile="smoke", backbone="resnet50",
                      crop_size=32, iterations=1, input_scale=1.2, loss_at="score_map", workers=0,
                      progress=False))
    assert shapes == [(torch.Size([2, 32, 32]), torch.Size([10, 10]))]  # crops of 32 -> 38 (x 1.2) -> 1/4: 10


def test_class_balanced_training_with_the_clamp_resumes_bit_identically(tmp_path):
    root = tmp_path / "voc"
    data.write_standin("voc2012", root, train=6, val=1, size=(48, 64), seed=5)
    # smoke's class-balanced epochs are 2-4 images (its recipe), so the greedy walk runs; crops of 40 shrink
    # on images scaled below 40 px and are padded to their batch
    options = dict(dataset="voc2012", data_root=root, profile="smoke", backbone="resnet50", crop_size=40,
                   iterations=2, checkpoint_every=1, class_balanced=True, short_edge_clamp=True,
                   train_short_edge=(40, 60), pad_crops=False, workers=0, progress=False)
    straight = torch.load(train(TrainConfig(out=tmp_path / "a", **options)), weights_only=True)
    assert list((tmp_path / "a" / "cache").glob("class_index-voc2012-train-*.json"))

    def stop(iteration):
        if iteration == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(out=tmp_path / "b", **options), on_iteration=stop)
    resumed = torch.load(train(TrainConfig(out=tmp_path / "b", resume=True, **options)), weights_only=True)
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name


def test_released_checkpoints_take_the_raw_image_when_asked(voc, tmp_path):
    root, _ = voc
    path = tmp_path / "refinenet50_voc.pth.tar"
    torch.save(to_released_state_dict(build_refinenet(21, backbone="resnet50", pooling_blocks=4)), path)
    raw = EvalConfig(path, "voc2012", root, input_scale=1.0, short_edge_clamp=False, workers=0, progress=False)
    assert first_conv_input(lambda: evaluate(raw)) == (120, 160)  # DrSleep/refinenet-pytorch's 80.5 setting


REPO = Path(__file__).resolve().parents[1]


def test_table4_says_the_papers_voc_models_were_pretrained_on_coco(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from benchmarks.report import table_report
    from benchmarks.report.notebooks import table_notebook

    frame = table_report.read_results(4, REPO / "results")
    assert "MS COCO" in table_report.markdown(4, frame)
    titles = []
    real = Figure.suptitle
    monkeypatch.setattr(Figure, "suptitle", lambda fig, text, **kw: titles.append(text) or real(fig, text, **kw))
    table_report.plot(4, frame, tmp_path / "table4.png")
    assert "MS COCO" in titles[0]
    assert "MS COCO" in table_notebook(4).cells[0].source
    assert "MS COCO" in (REPO / "README.md").read_text()
    table9 = table_report.read_results(9, REPO / "results")
    assert "MS COCO" not in table_report.markdown(9, table9)  # Table 4's remark only


def test_results_notebooks_and_readme_link_the_table_of_record():
    from benchmarks.report import table_report
    from benchmarks.report.notebooks import notebook_paths

    protocol = REPO / "docs" / "protocol.md"
    rows = [line for line in protocol.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) > 30
    assert "(docs/protocol.md)" in (REPO / "README.md").read_text()
    for number in (2, 4):
        frame = table_report.read_results(number, REPO / "results")
        assert "(../docs/protocol.md)" in table_report.markdown(number, frame)
    for path, book in notebook_paths().items():
        assert "(../docs/protocol.md)" in book.cells[0].source, path.name


def test_no_project_file_cites_the_reference_folder_that_clones_do_not_have():
    # the authors' code is cited by its repository file (guosheng/refinenet main/...), never by a local path
    files = [REPO / "README.md", REPO / "noxfile.py", *REPO.joinpath("docs").rglob("*.md")]
    files += [*REPO.joinpath("refinenet").rglob("*.py"), *REPO.joinpath("benchmarks").rglob("*.py")]
    citing = [str(f.relative_to(REPO)) for f in files if "shared/" in f.read_text()]
    assert not citing
