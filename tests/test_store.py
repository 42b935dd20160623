"""The result store and the table runner's orchestration: what makes a number keys it, tables share models,
seeds, --fresh, provenance and the dirty-tree guard, pre-flight before work.

Training and evaluation are replaced by recorders here (the real ones run in test_benchmarks.py), so these
tests pin down which models and evaluations the runner asks for, and what its CSV says about them.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pandas as pd
import pytest

from benchmarks import provenance
from benchmarks.report import table_report
from benchmarks.reproduce import main as reproduce
from benchmarks.tables import data_roots, rows, run_options, store, trained
from benchmarks.tables.run_options import RunOptions, Session
from benchmarks.tables.runner import run_table
from benchmarks.tables.specs import TABLES
from refinenet.config import EvalConfig
from refinenet.preflight import PreflightError
from refinenet.recipe import get_recipe
from refinenet.train_data import TrainingDataError


@pytest.fixture
def opts(tmp_path):
    return RunOptions(profile="smoke", results=tmp_path / "results", cache=tmp_path / "cache", progress=False)


def test_changing_iterations_seed_or_data_root_trains_a_new_model_and_the_csv_says_so(calls, opts, tmp_path):
    first = run_table(9, dataclasses.replace(opts, rows=("single",)))
    again = run_table(9, dataclasses.replace(opts, rows=("single",)))
    assert len(calls["train"]) == 1 and len(calls["evaluate"]) == 1  # the same run: nothing recomputed
    assert again["model_key"].tolist() == first["model_key"].tolist()
    variants = {"iterations": dict(iterations=7), "seed": dict(seeds=(3,)),
                "data root": dict(cache=tmp_path / "other-cache")}
    for what, change in variants.items():
        frame = run_table(9, dataclasses.replace(opts, rows=("single",), **change))
        assert frame["model_key"].iloc[0] != first["model_key"].iloc[0], what
        assert frame["eval_key"].iloc[0] != first["eval_key"].iloc[0], what
    assert len(calls["train"]) == 4
    assert frame["seed"].tolist() == [0] and first["seed"].tolist() == [0]
    assert "it7" in run_table(9, dataclasses.replace(opts, rows=("single",), iterations=7))["model_key"].iloc[0]
    assert len(calls["train"]) == 4  # ... and each of those is kept: asking again trains nothing
    csv = pd.read_csv(opts.results / "table9.csv")
    assert list(csv.columns) == table_report.COLUMNS and csv["iterations"].tolist() == [7]


def test_changing_the_profile_trains_a_new_model_and_the_csv_says_so(calls, opts):
    smoke = run_table(9, dataclasses.replace(opts, rows=("single",)))
    standin = run_table(9, dataclasses.replace(opts, rows=("single",), profile="standin"))
    assert len(calls["train"]) == 2 and calls["train"][1].profile == "standin"
    assert (smoke["profile"].tolist(), standin["profile"].tolist()) == (["smoke"], ["standin"])
    assert "-smoke-" in smoke["model_key"].iloc[0] and "-standin-" in standin["model_key"].iloc[0]
    assert pd.read_csv(opts.results / "table9.csv")["profile"].tolist() == ["standin"]


def test_the_store_says_whether_a_model_is_trained(calls, opts):
    root = data_roots.dataset_root("nyudv2", opts)
    cfg = trained.train_config(TABLES[9].rows[0], root, opts, 0)
    model = store.model_entry(opts.results / "runs", cfg, "smoke", store.data_identity("nyudv2", root, cfg.split))
    assert not store.is_trained(model)
    record = store.trained_model(model, cfg, {"code_version": "x", "dirty": False})
    assert store.is_trained(model) and record["precision"] == "fp32"
    assert json.loads((model.folder / "key.json").read_text()) == json.loads(store.canonical(model.key))
    assert store.trained_model(model, cfg, {}) == record and len(calls["train"]) == 1


def test_changing_the_profile_changes_the_model_key(opts, tmp_path):
    root = data_roots.dataset_root("nyudv2", opts)
    ids = store.data_identity("nyudv2", root, "train")
    row = TABLES[9].rows[0]
    keys = {profile: store.model_entry(tmp_path, trained.train_config(row, root, dataclasses.replace(
        opts, profile=profile), 0), profile, ids).name for profile in ("smoke", "standin", "paper")}
    standin_iterations = get_recipe("standin").iterations_for("nyudv2")
    assert len(set(keys.values())) == 3 and f"-standin-it{standin_iterations}-" in keys["standin"]


def test_every_evaluation_setting_is_part_of_the_evaluation_key(tmp_path):
    ids = {"dataset": "voc2012", "split": "val", "root": "/d", "files_sha256": "x", "items": 1, "kind": "real"}
    base = EvalConfig(checkpoint="c.pt", dataset="voc2012", data_root="/d", split="val")

    def name(cfg, model=None, test_server=None):
        return store.eval_entry(tmp_path, model or {"model": "m-1", "trained_at": "t"}, cfg, ids, test_server).name

    changed = [dataclasses.replace(base, scales=(0.5, 1.0)), dataclasses.replace(base, flip=True),
               dataclasses.replace(base, crf=True), dataclasses.replace(base, input_scale=1.2),
               dataclasses.replace(base, tile=256), dataclasses.replace(base, max_size=512)]
    names = {name(base), *(name(c) for c in changed), name(base, {"model": "m-2", "trained_at": "t"}),
             name(base, test_server=("test", "voc-test-server"))}
    assert len(names) == len(changed) + 3
    crf = dataclasses.replace(base, crf=True)
    other_crf = dataclasses.replace(crf, crf_params=dataclasses.replace(crf.crf_params, iterations=9))
    assert name(crf) != name(other_crf)
    # where things go and how the work is spread are not part of it
    assert name(dataclasses.replace(base, out="/elsewhere", workers=4, progress=False)) == name(base)


def test_tables_sharing_a_model_train_it_once(calls, opts):
    one = run_table(1, opts)  # Table 1 = Table 2's Person-Part ResNet-101
    two = run_table(2, dataclasses.replace(opts, rows=("ResNet-101, pool yes, msc no",)))
    assert len(calls["train"]) == 2  # Table 1's model, then only Table 2's NYUDv2 ResNet-101
    shared = two[two["dataset"] == "person_part"]
    assert shared["model_key"].iloc[0] == one["model_key"].iloc[0]
    assert shared["train_seconds"].iloc[0] == one["train_seconds"].iloc[0]


def test_table_3_and_table_9s_4_cascaded_reuse_table_2s_nyudv2_models(calls, opts):
    three = run_table(3, opts)  # Table 3 = Table 2's NYUDv2 ResNet-152
    two = run_table(2, dataclasses.replace(opts, rows=("ResNet-152", "ResNet-50, pool yes, msc no")))
    assert len(calls["train"]) == 4  # + Person-Part ResNet-152, NYUDv2 and Person-Part ResNet-50
    nyu = two[two["dataset"] == "nyudv2"].set_index("row")["model_key"]
    assert nyu["ResNet-152, pool yes, msc yes"] == three["model_key"].iloc[0]
    nine = run_table(9, dataclasses.replace(opts, rows=("4-cascaded",)))  # also matches 4-cascaded-2-scale
    assert len(calls["train"]) == 5  # only the 2-scale model is new
    assert nine.set_index("row")["model_key"]["4-cascaded"] == nyu["ResNet-50, pool yes, msc no"]


def test_the_twenty_distinct_models_of_tables_1_to_9(opts, tmp_path, monkeypatch):
    monkeypatch.setattr(store, "data_identity", lambda dataset, root, split: {"dataset": dataset, "split": split})
    keys = {store.model_entry(tmp_path, trained.train_config(row, tmp_path, opts, 0), "smoke",
                              store.data_identity(row.dataset, tmp_path, "train")).name
            for table in TABLES.values() for row in table.rows}
    assert len(keys) == 20


def test_seeds_train_and_evaluate_each_model_once_per_seed(calls, opts):
    frame = run_table(9, dataclasses.replace(opts, rows=("single", "2-cascaded"), seeds=(0, 1, 2)))
    assert len(calls["train"]) == 6 and sorted(c.seed for c in calls["train"]) == [0, 0, 1, 1, 2, 2]
    assert sorted(frame["seed"]) == [0, 0, 1, 1, 2, 2] and frame["model_key"].nunique() == 6
    md = (opts.results / "table9.md").read_text()
    assert "mean ± standard deviation over seeds 0, 1, 2" in md and "25.0 ± 0.0 (3 seeds)" in md
    assert (opts.results / "table9.png").read_bytes()[:4] == b"\x89PNG"


def test_fresh_redoes_a_shared_model_once_per_command(calls, opts):
    run_table(1, opts)
    fresh = dataclasses.replace(opts, fresh=True)
    session = Session.start(fresh)
    run_table(1, fresh, session)
    run_table(2, dataclasses.replace(fresh, rows=("ResNet-101, pool yes",)), session)
    # Table 1's model again, then Table 2's NYUDv2 ResNet-101; the shared one is not trained a third time
    assert len(calls["train"]) == 3


def test_rows_carry_chance_precision_device_and_provenance(calls, opts):
    frame = run_table(3, opts)
    row = frame[frame["metric"] == "pixel_acc"].iloc[0]
    assert row["chance_value"] == 75.0  # 30 of 40 ground-truth pixels are the majority class
    assert frame[frame["metric"] == "miou"]["chance_value"].iloc[0] == 37.5  # 0.75 / 2 classes present
    assert row["precision"] == "fp32" and row["device"].startswith("cpu (") and row["torch"]
    assert row["profile"] == "smoke" and row["data"] == "standin" and row["checkpoint"] == ""
    done = json.loads((opts.results / "runs" / "models" / row["model_key"] / "done.json").read_text())
    key = json.loads((opts.results / "runs" / "models" / row["model_key"] / "key.json").read_text())
    assert {"code_version", "dirty", "diff_sha256", "train_seconds"} <= set(done)
    assert key["train"]["seed"] == 0 and key["data"]["kind"] == "standin"
    assert store.key_hash(key) == row["model_key"].rsplit("-", 1)[1]


def test_progress_says_which_model_and_row(opts):
    progress = rows.TableProgress(2, models=8, rows=12, enabled=False)
    progress.next_model()
    assert progress.text == "table 2: model 1/8, row 1/12"
    for _ in range(4):
        progress.row_done()
    progress.next_model()
    assert progress.text == "table 2: model 2/8, row 5/12"
    progress.close()


def last_error_line_of_table9_single(opts, capsys) -> str:
    """Run Table 9's single row (smoke), expect exit 2 without a traceback, return the last stderr line."""
    argv = ["9", "--rows", "single", "--profile", "smoke", "--results", str(opts.results), "--cache",
            str(opts.cache), "--no-progress"]
    assert reproduce(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]  # after the stand-in converter's progress


def test_a_file_going_bad_mid_training_ends_the_table_run_with_one_line(calls, monkeypatch, opts, capsys):
    def broken(cfg, **_):
        raise TrainingDataError("cannot read image /data/nyudv2/images/0001.png: truncated; training stopped, the "
                                "last good checkpoint /r/checkpoint.pt (iteration 2) is kept")

    monkeypatch.setattr(store, "train", broken)
    err = last_error_line_of_table9_single(opts, capsys)
    assert err.startswith("error: table 9: cannot read image /data/nyudv2/images/0001.png")
    assert "checkpoint /r/checkpoint.pt (iteration 2) is kept" in err and "Traceback" not in err


def test_a_file_going_bad_mid_evaluation_ends_the_table_run_with_one_line(calls, monkeypatch, opts, capsys):
    def broken(cfg, **_):
        raise OSError("cannot read image /data/nyudv2/images/0007.png: image file is truncated")

    monkeypatch.setattr(store, "evaluate", broken)
    err = last_error_line_of_table9_single(opts, capsys)
    assert err.startswith("error: table 9: cannot read image /data/nyudv2/images/0007.png")
    assert "checkpoint.pt and every finished model and evaluation are kept" in err
    assert len(calls["train"]) == 1 and not list((opts.results / "runs" / "evals").glob("*/result.json"))
    last_error_line_of_table9_single(opts, capsys)  # the rerun fails the same way...
    assert len(calls["train"]) == 1  # ...and reuses the trained model


def test_precision_names_training_and_evaluation_when_they_differ():
    assert provenance.precision("fp32", "fp32") == "fp32"
    assert provenance.precision(None, "fp32 (tf32 convs)") == "fp32 (tf32 convs)"
    assert provenance.precision("bf16", "fp32") == "train bf16, eval fp32"


def test_an_unknown_row_pattern_lists_the_rows(opts):
    with pytest.raises(ValueError, match="4-cascaded"):
        run_table(9, dataclasses.replace(opts, rows=("no such row",)))


def test_a_bad_file_stops_the_table_before_any_training(calls, opts):
    root = data_roots.dataset_root("nyudv2", opts)
    bad = sorted((root / "images").iterdir())[0]
    bad.write_bytes(b"not an image")
    with pytest.raises(PreflightError, match=bad.name):
        run_table(9, dataclasses.replace(opts, rows=("single",)))
    assert calls["train"] == []


def dirty(monkeypatch):
    state = provenance.Provenance("abc1234-dirty", True, "d1ff", "2.x", "cpu (test, 1 threads)")
    monkeypatch.setattr(run_options, "read_provenance", lambda device: state)


def test_a_dirty_tree_cannot_write_the_repositorys_results(calls, monkeypatch, tmp_path, capsys):
    dirty(monkeypatch)
    target = provenance.REPO / "results" / "table9.csv"
    before = target.stat().st_mtime_ns if target.exists() else None
    assert reproduce(["9", "--profile", "smoke", "--cache", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "uncommitted changes" in err and "--allow-dirty" in err
    assert calls["train"] == [] and (target.stat().st_mtime_ns if target.exists() else None) == before
    provenance.check_results_folder(provenance.REPO / "results", run_options.read_provenance("cpu"), allow_dirty=True)


def test_a_dirty_tree_may_write_elsewhere_and_every_row_says_so(calls, monkeypatch, opts):
    dirty(monkeypatch)
    frame = run_table(9, dataclasses.replace(opts, rows=("single",)))
    assert frame["dirty"].all() and frame["code_version"].str.endswith("-dirty").all()
    assert "DIRTY TREE" in (opts.results / "table9.md").read_text()


def test_models_made_from_a_dirty_tree_keep_their_rows_dirty(calls, monkeypatch, opts):
    with monkeypatch.context() as patch:
        dirty(patch)
        run_table(9, dataclasses.replace(opts, rows=("single",)))
    clean = provenance.Provenance("abc1234", False, None, "2.x", "cpu (test, 1 threads)")
    monkeypatch.setattr(run_options, "read_provenance", lambda device: clean)
    frame = run_table(9, dataclasses.replace(opts, rows=("single",)))
    assert frame["dirty"].all() and len(calls["train"]) == 1  # reused, and still marked


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def test_git_state_reports_a_dirty_tree_but_not_its_own_outputs(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table1.csv").write_text("a\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "init")
    version, is_dirty, diff = provenance.git_state(tmp_path)
    assert not is_dirty and diff is None and not version.endswith("-dirty")
    (tmp_path / "results" / "table1.csv").write_text("b\n")  # a result written by a run
    (tmp_path / "results" / "runs").mkdir()
    (tmp_path / "results" / "runs" / "x.json").write_text("{}")
    assert provenance.git_state(tmp_path)[1] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    version, is_dirty, diff = provenance.git_state(tmp_path)
    assert is_dirty and version.endswith("-dirty") and len(diff) == 64
    (tmp_path / "code.py").write_text("x = 3\n")
    assert provenance.git_state(tmp_path)[2] != diff  # the hash follows the change
