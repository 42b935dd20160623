"""`--profile released`: the authors' checkpoints evaluated for the rows they cover, the other rows listed
as such, the released-checkpoints summary, and errors that say which file is missing and where it comes from.

The weights are random values in the published layout (RefineNet-50, 40 classes, 4 pooling blocks: the
layout of refinenet50_nyu.pth.tar, checked against the reference in test_released.py); the data is a tiny
stand-in NYUDv2.
"""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
import torch

from benchmarks.reproduce import main as reproduce
from benchmarks.tables import released
from refinenet import data
from refinenet.model import build_refinenet
from refinenet.released import to_released_state_dict

ROW = "ResNet-50, pool yes, msc no"  # Table 2: covered on NYUDv2 by refinenet50_nyu, not on Person-Part


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("released")
    data.write_standin("nyudv2", base / "raw", train=2, val=2, size=(48, 64), seed=0)
    data.prepare("nyudv2", base / "raw", base / "data" / "nyudv2")
    torch.manual_seed(0)
    model = build_refinenet(40, backbone="resnet50", pooling_blocks=4)
    (base / "weights").mkdir()
    torch.save({"model": to_released_state_dict(model)}, base / "weights" / "refinenet50_nyu.pth.tar")
    return base


def args(base, *extra):
    return ["--profile", "released", "--weights", str(base / "weights"), "--data-root", str(base / "data"),
            "--results", str(base / "results"), "--cache", str(base / "cache"), "--no-progress", *extra]


@pytest.fixture(scope="module")
def table2(setup):
    assert reproduce(["2", *args(setup, "--rows", ROW)]) == 0
    return pd.read_csv(setup / "results" / "table2.csv", dtype={"class_name": str})


def test_covered_rows_are_measured_from_the_released_checkpoint(setup, table2):
    nyu = table2[table2["dataset"] == "nyudv2"].iloc[0]
    sha = hashlib.sha256((setup / "weights" / "refinenet50_nyu.pth.tar").read_bytes()).hexdigest()
    assert nyu["profile"] == "released" and nyu["data"] == "standin"
    assert nyu["checkpoint"] == "refinenet50_nyu.pth.tar" and nyu["checkpoint_sha256"] == sha
    assert nyu["model_key"] == f"refinenet50_nyu.pth.tar@{sha[:16]}" and isinstance(nyu["eval_key"], str)
    assert 0 <= nyu["measured_value"] <= 100 and 0 <= nyu["chance_value"] <= 100
    assert nyu["paper_value"] == 42.5 and pd.isna(nyu["seed"]) and pd.isna(nyu["iterations"])
    assert nyu["note"] == "released checkpoint has 4 pooling blocks; the row trained 2"
    assert nyu["precision"] == "fp32"


def test_uncovered_rows_are_listed_with_an_empty_measured_value(table2):
    assert len(table2) == 2  # nothing dropped
    person = table2[table2["dataset"] == "person_part"].iloc[0]
    assert person["profile"] == "released" and person["note"] == "no released weights"
    assert pd.isna(person["measured_value"]) and pd.isna(person["chance_value"]) and person["paper_value"] == 65.7


def test_markdown_and_plot_render_with_uncovered_rows(setup, table2):
    md = (setup / "results" / "table2.md").read_text()
    assert "profile=released" in md and "| ResNet-50, pool yes, msc no | person_part | no | no | 65.7 | — |" in md
    assert (setup / "results" / "table2.png").read_bytes()[:4] == b"\x89PNG"


def test_summary_puts_each_checkpoint_beside_the_paper(setup, table2):
    assert reproduce(["released", *args(setup)]) == 0
    summary = pd.read_csv(setup / "results" / "released.csv")
    assert list(summary.columns) == released.SUMMARY_COLUMNS
    assert set(summary["checkpoint"]) == {"refinenet50_nyu.pth.tar"} and len(summary) == 6  # 2 scale settings x 3
    miou = summary[summary["metric"] == "miou"].set_index("msc")
    assert miou.loc[False, "paper_value"] == 42.5 and miou.loc[True, "paper_value"] == 43.8
    assert miou.loc[False, "paper_source"] == f"Table 2, {ROW}"
    # the single-scale evaluation is the one the table row made: the store did not repeat it
    nyu = table2[table2["dataset"] == "nyudv2"].iloc[0]
    assert miou.loc[False, "eval_key"] == nyu["eval_key"]
    assert miou.loc[False, "measured_value"] == nyu["measured_value"]
    assert "Table 2, ResNet-50, pool yes, msc yes" in (setup / "results" / "released.md").read_text()


def test_table_9s_4_cascaded_row_reuses_table_2s_evaluation_of_the_same_checkpoint(setup, table2):
    assert reproduce(["9", *args(setup, "--rows", "4-cascaded")]) == 0
    nine = pd.read_csv(setup / "results" / "table9.csv").set_index("row")
    nyu = table2[table2["dataset"] == "nyudv2"].iloc[0]
    assert nine.loc["4-cascaded", "eval_key"] == nyu["eval_key"]  # same file, same protocol: evaluated once
    assert nine.loc["4-cascaded", "measured_value"] == nyu["measured_value"]
    assert nine.loc["4-cascaded-2-scale", "note"] == "no released weights"
    assert pd.isna(nine.loc["4-cascaded-2-scale", "measured_value"])


def test_published_figures_are_data_with_their_source():
    published = released.published_figures()
    row = published[published["checkpoint"] == "refinenet101_voc.pth.tar"].iloc[0]
    assert (row["split"], row["msc"], row["metric"], row["value"]) == ("val", "no", "miou", 80.5)
    assert "DrSleep/refinenet-pytorch" in row["source"]


def test_a_missing_checkpoint_is_named_with_where_to_get_it(setup, capsys):
    assert reproduce(["3", *args(setup)]) == 2
    err = capsys.readouterr().err
    assert "refinenet152_nyu.pth.tar" in err and "RefineNet-Res152" in err and "guosheng/refinenet" in err
    assert "Traceback" not in err


def test_a_missing_data_folder_is_named_with_the_layout_expected(setup, tmp_path, capsys):
    argv = ["9", *args(setup, "--rows", "4-cascaded"), "--data-root", str(tmp_path / "nowhere")]
    assert reproduce(argv) == 2
    err = capsys.readouterr().err
    assert f"missing {tmp_path / 'nowhere' / 'nyudv2'}" in err and "refinenet prepare nyudv2" in err


def test_released_profile_without_weights_says_what_to_give(tmp_path, capsys):
    assert reproduce(["4", "--profile", "released", "--results", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--weights DIR" in err and "refinenet101_voc.pth.tar" in err


def test_summary_target_needs_the_released_profile():
    with pytest.raises(SystemExit):
        reproduce(["released", "--profile", "smoke"])
