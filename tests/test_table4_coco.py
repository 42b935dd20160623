"""Table 4 in two stages (paper Sec. 4.2): a COCO-stage model of its own, whose weights start the VOC model; the
VOC model's key holds the COCO model's; `--no-coco` gives the ImageNet-only VOC models."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from benchmarks.tables import plan, store
from benchmarks.tables.run_options import RunOptions
from benchmarks.tables.runner import run_table
from benchmarks.tables.specs import TABLES
from refinenet import data
from refinenet import train as train_module
from refinenet.checkpoint import CheckpointError
from refinenet.config import TrainConfig, resolve
from refinenet.recipe import RECIPES
from refinenet.train import train


def test_plan_lists_the_coco_stage_as_a_model_of_its_own_before_the_voc_model():
    models = plan.plan_models([4], RunOptions(profile="paper"))
    assert [m.cfg.dataset for m in models] == ["coco", "voc2012", "coco", "voc2012"]
    coco101, voc101 = models[0], models[1]
    assert coco101.rows == ["table 4: RefineNet-Res101 (coco stage)"] and coco101.first_stage
    assert voc101.rows == ["table 4: RefineNet-Res101"] and "-from-coco-" in voc101.key
    assert coco101.cfg.split == "train" and coco101.cfg.pooling_blocks == 4 == voc101.cfg.pooling_blocks
    assert coco101.cfg.backbone == voc101.cfg.backbone == "resnet101"
    assert coco101.cfg.iterations == RECIPES["paper"].iterations  # the paper gives no COCO schedule
    without = plan.plan_models([4], RunOptions(profile="paper", coco=False))
    assert [m.cfg.dataset for m in without] == ["voc2012", "voc2012"]
    assert not {m.key for m in without} & {m.key for m in models}
    frame = plan.plan_frame(models, [(None, "none")] * len(models), RunOptions(profile="paper"))
    assert frame["row_count"].sum() == 3  # the COCO stages serve rows only through the VOC models


def _voc_cfg(**kw) -> TrainConfig:
    return TrainConfig("voc2012", "x", "y", split="train_aug", profile="paper", backbone="resnet101", **kw)


def test_the_voc_models_key_holds_the_coco_models_key():
    data_id = {"dataset": "voc2012", "split": "train_aug"}
    coco_a = store.model_entry(".", TrainConfig("coco", "x", "y", profile="paper", iterations=10), "paper",
                               {"dataset": "coco", "split": "train"})
    coco_b = store.model_entry(".", TrainConfig("coco", "x", "y", profile="paper", iterations=20), "paper",
                               {"dataset": "coco", "split": "train"})
    voc_a = store.model_entry(".", _voc_cfg(init_from="a/checkpoint.pt"), "paper", data_id, coco_a)
    voc_b = store.model_entry(".", _voc_cfg(init_from="a/checkpoint.pt"), "paper", data_id, coco_b)
    plain = store.model_entry(".", _voc_cfg(), "paper", data_id)
    assert voc_a.key["init"] == {"model": coco_a.name, "key": coco_a.key}
    assert len({voc_a.name, voc_b.name, plain.name}) == 3
    assert voc_a.name.split("-")[-3:-1] == ["from", "coco"]


def test_models_without_a_coco_stage_keep_the_keys_they_had():
    key = store.model_entry(".", TrainConfig("nyudv2", "x", "y", profile="paper"), "paper", {"dataset": "nyudv2"}).key
    assert "init" not in key and "init_from" not in key["train"]
    assert not {"coco", "coco_iterations"} & set(key["recipe"])


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    data.write_standin("coco", root, train=3, val=1, size=(48, 64), seed=0)
    return root


def test_the_voc_stage_starts_from_every_weight_of_the_coco_stage(coco_root, tmp_path):
    voc_root = tmp_path / "voc"
    data.write_standin("voc2012", voc_root, train=2, val=1, size=(48, 64), seed=0)
    common = dict(profile="smoke", backbone="resnet50", crop_size=32, workers=0, progress=False, iterations=1)
    first = train(TrainConfig("coco", coco_root, tmp_path / "coco-run", **common))
    run = train_module.build(resolve(TrainConfig("voc2012", voc_root, tmp_path / "voc-run", init_from=first,
                                                 **common)))
    started = torch.load(first, weights_only=True)["model"]
    assert all(torch.equal(value, started[name]) for name, value in run.model.state_dict().items())
    with pytest.raises(CheckpointError, match="--init-from"):
        train_module.build(resolve(TrainConfig("voc2012", voc_root, tmp_path / "voc-run2", init_from=first,
                                               **{**common, "backbone": "resnet101"})))


def test_table4_smoke_run_trains_the_coco_stage_then_the_voc_model_from_it(tmp_path, monkeypatch):
    # Table 4's wiring with its rows as one ResNet-50 model, single scale, no CRF: the stages are under test here,
    # not the model's size
    rows = tuple(dataclasses.replace(row, backbone="resnet50", msc=False, crf=False) for row in TABLES[4].rows)
    monkeypatch.setitem(TABLES, 4, dataclasses.replace(TABLES[4], rows=rows))
    opts = RunOptions(profile="smoke", results=tmp_path / "results", cache=tmp_path / "cache", progress=False,
                      allow_dirty=True)
    frame = run_table(4, opts)
    models = sorted(p.name for p in (tmp_path / "results" / "runs" / "models").iterdir())
    assert len(models) == 2 and models[0].startswith("coco-resnet50") and "-from-coco-" in models[1]
    coco_done = tmp_path / "results" / "runs" / "models" / models[0] / "done.json"
    assert json.loads(coco_done.read_text())["iterations"] == RECIPES["smoke"].coco_iterations
    voc_key = json.loads((tmp_path / "results" / "runs" / "models" / models[1] / "key.json").read_text())
    assert voc_key["init"]["model"] == models[0]
    assert set(frame["model_key"]) == {models[1]}
    assert frame.loc[frame["metric"] == "miou", "measured_value"].notna().all()


def test_a_voc_model_from_an_earlier_coco_stage_is_trained_again(tmp_path, monkeypatch):
    from benchmarks.tables import trained

    stages = []

    def fake_trained_model(entry, cfg, stamp):
        stages.append(entry.folder.name)
        entry.folder.mkdir(parents=True, exist_ok=True)
        (entry.folder / "done.json").write_text("{}")
        return {}

    monkeypatch.setattr(store, "trained_model", fake_trained_model)
    coco = trained.ModelWork(None, store.Entry(tmp_path / "coco", {}), tmp_path)
    voc = trained.ModelWork(None, store.Entry(tmp_path / "voc", {}), tmp_path, init=coco)
    (tmp_path / "voc").mkdir()
    (tmp_path / "voc" / "done.json").write_text("{}")  # finished from a COCO model that is gone
    (tmp_path / "voc" / "stale").write_text("")
    trained.trained_stages(voc, {})
    assert stages == ["coco", "voc"] and not (tmp_path / "voc" / "stale").exists()
    stages.clear()
    (tmp_path / "voc" / "kept").write_text("")
    trained.trained_stages(voc, {})  # both finished: the VOC model is kept
    assert stages == ["coco", "voc"] and (tmp_path / "voc" / "kept").exists()
