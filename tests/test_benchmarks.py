"""Table runners: specs match the paper's data, a smoke run writes CSV / markdown / PNG, resume."""

import json

import pandas as pd
import pytest
import torch

from benchmarks.report import table_report
from benchmarks.reproduce import main as reproduce
from benchmarks.tables.paper_numbers import load_paper_table, paper_value
from benchmarks.tables.run_options import RunOptions
from benchmarks.tables.runner import run_table
from benchmarks.tables.specs import TABLES
from refinenet import data


@pytest.mark.parametrize("number", sorted(TABLES))
def test_every_row_with_a_paper_counterpart_finds_exactly_its_numbers(number):
    paper = load_paper_table(number)
    for row in TABLES[number].rows:
        assert row.dataset in data.DATASET_NAMES
        for metric in row.metrics:
            value = paper_value(paper, row, metric)
            assert (value is not None) == bool(row.paper), (row.label, metric)
        if row.per_class and row.paper:
            names = data.dataset_info(row.dataset).class_names[1:]  # the paper has no background column
            assert all(paper_value(paper, row, "iou", name) is not None for name in names)


def test_rows_differing_only_in_evaluation_share_one_trained_model():
    keys = [row.model_key for row in TABLES[2].rows]
    assert len(keys) == 12 and len(set(keys)) == 8  # msc / single-scale pairs share
    assert len({row.key for row in TABLES[2].rows}) == 12


def test_table2_ablation_row_turns_chained_pooling_off():
    rows = [r for r in TABLES[2].rows if r.paper["pooling"] == "no"]
    assert rows and all(r.pooling_blocks == 0 and r.backbone == "resnet50" for r in rows)


@pytest.fixture(scope="module")
def smoke_table9(tmp_path_factory):
    base = tmp_path_factory.mktemp("smoke")
    opts = RunOptions(profile="smoke", results=base / "results", cache=base / "cache", progress=False)
    return opts, run_table(9, opts)


def test_smoke_run_writes_tidy_csv_markdown_and_png(smoke_table9):
    opts, frame = smoke_table9
    csv = pd.read_csv(opts.results / "table9.csv")
    assert list(csv.columns) == table_report.COLUMNS
    assert len(csv) == 4 and set(csv["row"]) == set(TABLES[9].rows[i].label for i in range(4))
    assert set(csv["profile"]) == {"smoke"} and set(csv["data"]) == {"standin"}
    assert csv["paper_value"].tolist() == [40.3, 40.9, 42.5, 43.1]
    assert csv["measured_value"].between(0, 100).all() and csv["chance_value"].between(0, 100).all()
    assert set(csv["precision"]) == {"fp32"} and set(csv["seed"]) == {0} and csv["model_key"].nunique() == 4
    assert csv["eval_key"].nunique() == 4 and csv["checkpoint"].isna().all()
    md = (opts.results / "table9.md").read_text()
    assert "profile=smoke, data=standin" in md and "| 4-cascaded | nyudv2 |" in md
    assert (opts.results / "table9.png").read_bytes()[:4] == b"\x89PNG"


def test_resumed_run_skips_finished_rows(smoke_table9):
    opts, first = smoke_table9
    single = first[first["row"] == "single"].iloc[0]
    done = opts.results / "runs" / "models" / single["model_key"] / "done.json"
    before = done.stat().st_mtime_ns
    result = opts.results / "runs" / "evals" / single["eval_key"] / "result.json"
    cached = json.loads(result.read_text())
    frame = run_table(9, opts)
    assert done.stat().st_mtime_ns == before
    single = frame[frame["row"] == "single"]["measured_value"].iloc[0]
    assert single == pytest.approx(round(100 * cached["result"]["miou"], 2))
    assert frame["model_key"].tolist() == first["model_key"].tolist()


def test_plots_rerender_from_the_csv_alone(smoke_table9):
    opts, _ = smoke_table9
    (opts.results / "table9.png").unlink()
    (opts.results / "table9.md").unlink()
    assert table_report.main(["--results", str(opts.results)]) == 0
    assert (opts.results / "table9.png").is_file() and (opts.results / "table9.md").is_file()


def test_paper_profile_without_data_root_says_what_to_give(tmp_path, capsys):
    code = reproduce(["1", "--profile", "paper", "--results", str(tmp_path), "--no-progress"])
    assert code == 2
    assert "--data-root" in capsys.readouterr().err


def test_unknown_table_number_is_rejected():
    with pytest.raises(SystemExit):
        reproduce(["12"])


def test_local_launcher_with_two_jobs_gives_the_inline_table(smoke_table9, tmp_path):
    opts, inline = smoke_table9
    results = tmp_path / "results"
    code = reproduce(["9", "--profile", "smoke", "--rows", "single", "2-cascaded", "--results", str(results),
                      "--cache", str(opts.cache), "--no-progress", "--launcher", "local", "--jobs", "2",
                      "--threads-per-job", str(torch.get_num_threads()), "--poll-seconds", "0.5"])
    assert code == 0
    local = pd.read_csv(results / "table9.csv")
    expected = inline[inline["row"].isin(["single", "2-cascaded"])]
    assert local["model_key"].tolist() == expected["model_key"].tolist()  # the same models, trained as jobs
    assert local["measured_value"].tolist() == expected["measured_value"].tolist()
    for key in local["model_key"]:
        job = json.loads((results / "runs" / "models" / key / "job.json").read_text())
        assert job["launcher"] == "local" and (results / "runs" / "models" / key / "jobs").is_dir()
