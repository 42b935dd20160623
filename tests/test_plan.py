"""`--plan`: one line per distinct model across tables, plan.csv, estimates from efficiency.csv or --calibrate."""

import pandas as pd
import pytest

from benchmarks.reproduce import main as reproduce
from benchmarks.tables import plan
from benchmarks.tables.run_options import RunOptions
from benchmarks.tables.runner import run_table


def test_models_shared_by_tables_appear_once_with_every_row_they_serve():
    models = plan.plan_models([1, 2, 3], RunOptions(profile="paper"))
    assert len(models) == 8  # Table 2's eight models; Tables 1 and 3 reuse two of them
    served = {m.key.split("-paper-")[0]: m.rows for m in models}
    assert served["person_part-resnet101-4-cascaded-pool4"] == [
        "table 1: RefineNet-Res101", "table 2: ResNet-101, pool yes, msc no", "table 2: ResNet-101, pool yes, msc yes"]
    assert served["nyudv2-resnet152-4-cascaded-pool2"] == ["table 2: ResNet-152, pool yes, msc yes",
                                                           "table 3: RefineNet-Res152"]
    assert all(m.cfg.iterations == 100_000 and m.cfg.crop_size == 400 and m.cfg.batch_size == 1 for m in models)


def test_plan_writes_plan_csv_without_data_and_estimates_from_matching_efficiency_rows(tmp_path, capsys):
    figures = tmp_path / "efficiency.csv"
    pd.DataFrame([
        {"model": "RefineNet-101", "input_size": 400, "batch": 1, "setting": "default", "measurement":
         "train_step_time", "value": 0.36, "device": "test CPU", "device_type": "cpu", "date": "2026-01-02"},
        {"model": "RefineNet-101", "input_size": 400, "batch": 1, "setting": "default", "measurement":
         "train_step_time", "value": 9.0, "device": "old CPU", "device_type": "cpu", "date": "2025-01-01"},
        {"model": "RefineNet-152", "input_size": 400, "batch": 1, "setting": "default", "measurement":
         "train_step_time", "value": 0.1, "device": "a GPU", "device_type": "cuda", "date": "2026-01-02"},
    ]).to_csv(figures, index=False)
    code = reproduce(["5", "6", "--profile", "paper", "--plan", "--device", "cpu", "--results", str(tmp_path),
                      "--efficiency-csv", str(figures)])
    assert code == 0
    frame = pd.read_csv(tmp_path / "plan.csv")
    assert list(frame.columns) == plan.COLUMNS and len(frame) == 3
    by_model = frame.set_index(frame["dataset"] + "-" + frame["backbone"])
    context = by_model.loc["pascal_context-resnet101"]
    assert context["estimated_hours"] == pytest.approx(0.36 * 100_000 / 3600, abs=1e-3)  # the latest row
    assert "test CPU" in context["estimate_source"]
    city = by_model.loc["cityscapes-resnet101"]  # crop 600: scaled by the pixel count
    assert city["crop"] == 600 and city["step_seconds"] == pytest.approx(0.36 * 2.25, abs=1e-4)
    assert pd.isna(by_model.loc["pascal_context-resnet152", "estimated_hours"])  # only a cuda figure exists
    out = capsys.readouterr().out
    assert "3 distinct models, 3 table rows" in out and "1 models without an estimate" in out
    assert not (tmp_path / "runs").exists()  # nothing trained, no store entry


def test_calibrate_times_each_architecture_on_this_device(tmp_path):
    code = reproduce(["9", "--profile", "smoke", "--rows", "single", "--plan", "--calibrate", "--calibrate-steps",
                      "1", "--device", "cpu", "--results", str(tmp_path)])
    assert code == 0
    row = pd.read_csv(tmp_path / "plan.csv").iloc[0]
    assert row["crop"] == 48 and row["batch"] == 2 and row["iterations"] == 4 and row["step_seconds"] > 0
    assert row["estimated_hours"] == pytest.approx(row["step_seconds"] * 4 / 3600, abs=1e-3)
    assert row["estimate_source"].startswith("--calibrate")


def test_released_profile_has_no_plan(tmp_path, capsys):
    assert reproduce(["3", "--profile", "released", "--plan", "--results", str(tmp_path)]) == 2
    assert "trains nothing" in capsys.readouterr().err


def test_plan_keys_are_the_store_folders_once_the_data_is_there(tmp_path, calls):
    opts = RunOptions(profile="smoke", rows=("single",), results=tmp_path / "results", cache=tmp_path / "cache",
                      progress=False)
    before = plan.plan_models([9], opts)  # no stand-in data yet: a configuration-only key
    assert [m.key_source.startswith("configuration only") for m in before] == [True]
    run_table(9, opts)
    after = plan.plan_models([9], opts)
    folders = [p.name for p in (tmp_path / "results" / "runs" / "models").iterdir()]
    assert after[0].key_source == "store" and [after[0].key] == folders
    assert before[0].key != after[0].key
