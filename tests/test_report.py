"""Results markdown and plots: chance baselines, seeds, dirty-tree stamps, notes, timing per model,
derived sentences and honest figures, on CSVs of the agreed schema and of the older one."""

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.patches import Rectangle
from results_fixtures import old_schema, synthetic, write

from benchmarks.report import claims, measured, plots, summaries, table_report
from benchmarks.tables.specs import TABLES


def _md(number, frame):
    return table_report.markdown(number, frame)


def _title(number, frame):
    fig = plots.figure(number, measured.normalise(frame))
    text = fig._suptitle.get_text()
    plt.close(fig)
    return text


def test_old_schema_csv_reads_with_missing_columns_as_absent(tmp_path):
    frame = old_schema(synthetic(9, lambda row, metric, seed: 30.0)).assign(code_version="abc1234-dirty")
    loaded = measured.load_results(write(frame, tmp_path, 9))
    assert loaded["chance_value"].isna().all() and loaded["seed"].isna().all()
    assert loaded["dirty"].all()  # derived from the code version
    assert list(loaded["model_key"].unique()) == [f"nyudv2-resnet50-{v}-pool2" for v in
                                                  ("single", "2-cascaded", "4-cascaded", "4-cascaded-2-scale")]
    md = _md(9, loaded)
    assert "seed unknown" in md and "FROM A DIRTY TREE" in md
    assert "predates the chance_value column" in md and "learned:" not in md


def test_a_clean_old_schema_csv_carries_no_dirty_stamp(tmp_path):
    frame = old_schema(synthetic(1, lambda row, metric, seed: 30.0))
    md = _md(1, measured.load_results(write(frame, tmp_path, 1)))
    assert "DIRTY" not in md


def _store_style(frame):
    """`frame` as the result store's runner writes it: a bool `dirty` column that can be true while the code
    version is clean (the model was trained from a dirty tree), and released-profile rows without weights
    that carry no measured value, no seed and no data kind."""
    frame = frame.copy()
    frame["dirty"] = [i == 0 for i in range(len(frame))]
    unweighted = frame["row"] == frame["row"].iloc[-1]
    frame.loc[unweighted, ["measured_value", "chance_value", "data", "seed"]] = None
    frame.loc[unweighted, "note"] = "no released weights"
    return frame


def test_store_schema_csv_reads_its_dirty_flag_and_rows_without_weights(tmp_path):
    frame = _store_style(synthetic(2, lambda row, metric, seed: 40.0, profile="released", chance=2.0))
    loaded = measured.load_results(write(frame, tmp_path, 2))
    assert loaded["dirty"].tolist() == frame["dirty"].tolist()  # a clean code version does not hide the flag
    last = frame["row"].iloc[-1]
    assert (loaded.loc[loaded["row"] == last, "data"] == "").all()
    md = _md(2, loaded)
    assert "FROM A DIRTY TREE: 1 of" in md
    line = next(line for line in md.splitlines() if line.startswith(f"| {last} |"))
    assert "no released weights" in line and "| — |" in line  # the row stays in the table, unmeasured
    assert f"{last} (person_part): mean IoU not measured" in md


def test_several_seeds_show_mean_and_spread():
    frame = synthetic(1, lambda row, metric, seed: 40.0 + seed, seeds=(0, 1, 2))
    md = _md(1, frame)
    assert "41.0 ± 1.0 (3 seeds)" in md and "mean ± standard deviation over seeds 0, 1, 2" in md
    assert "standard deviation" not in _md(1, synthetic(1, lambda row, metric, seed: 40.0))


@pytest.mark.parametrize(("value", "chance", "sentence"), [
    (41.3, 2.1, "learned: mean IoU 41.3 vs chance 2.1 (+39.2)"),
    (2.5, 2.1, "at chance: mean IoU 2.5 vs chance 2.1 (+0.4)"),
    (0.5, 5.0, "below chance: mean IoU 0.5 vs chance 5.0 (-4.5)"),
])
def test_learned_sentence_follows_the_numbers(value, chance, sentence):
    md = _md(1, synthetic(1, lambda row, metric, seed: value, chance=chance))
    assert sentence in md
    verdict = sentence.split(":")[0]
    assert f"{1 if verdict == 'learned' else 0} of 1 measured rows learned" in md


def test_unmeasured_rows_are_not_counted_as_not_learned():
    values = {"RefineNet-Res101": 30.0, "RefineNet-Res152": float("nan")}
    md = _md(6, synthetic(6, lambda row, metric, seed: values[row.label], chance=2.0))
    assert "1 of 1 measured rows learned (mean IoU above the majority-class baseline); 1 not measured." in md
    assert "RefineNet-Res152 (pascal_context): mean IoU not measured" in md


def test_chance_column_sits_beside_the_measured_numbers():
    md = _md(3, synthetic(3, lambda row, metric, seed: 50.0, chance=7.5))
    header = next(line for line in md.splitlines() if line.startswith("| row |"))
    assert "pixel accuracy measured | pixel accuracy chance" in header
    assert "| 50.0 | 7.5 |" in md


def test_dirty_rows_stamp_the_markdown_header_and_the_plot_title():
    frame = synthetic(5, lambda row, metric, seed: 50.0, dirty=True)
    head = _md(5, frame).split("## Results")[0]
    assert "FROM A DIRTY TREE" in head and "abc1234-dirty" in head
    assert "FROM A DIRTY TREE" in _title(5, frame)
    assert "DIRTY" not in _title(5, synthetic(5, lambda row, metric, seed: 50.0))


def test_a_shared_model_is_timed_once():
    frame = synthetic(2, lambda row, metric, seed: 40.0, seeds=(0, 1))
    times = measured.timing(measured.normalise(frame))
    models = {row.model_key for row in TABLES[2].rows}
    assert len(times) == 2 * len(models) == 16  # 12 rows, 8 trained models, 2 seeds
    assert times["train_seconds"].sum() == pytest.approx(frame.drop_duplicates("model_key")["train_seconds"].sum())
    shared = times[times["rows"].str.contains(";")]
    assert len(shared) == 8 and (shared["rows"].str.count(";") == 1).all()
    md = _md(2, frame)
    assert f"Total: 16 trained models, {times['train_seconds'].sum():.1f} s of training" in md


def test_note_and_released_checkpoint_are_shown():
    frame = synthetic(1, lambda row, metric, seed: 60.0, profile="released", checkpoint="refinenet101_voc.pth.tar",
                      note="released checkpoint has 4 pooling blocks")
    md = _md(1, frame)
    assert "released checkpoint has 4 pooling blocks" in md and "refinenet101_voc.pth.tar" in md
    assert "released checkpoints" in md  # the seed label


def test_test_server_remark_comes_from_the_paper_data_and_coco_from_the_table_spec():
    t4 = synthetic(4, lambda row, metric, seed: 50.0)
    md, title = _md(4, t4), _title(4, t4)
    for text in (md, title):
        assert "measured on val; paper: test server" in text
        assert "pre-trained on MS COCO" in text
    assert f"> **{TABLES[4].remark}**" in md
    t5 = synthetic(5, lambda row, metric, seed: 50.0)
    assert "paper: test server" in _title(5, t5) and "COCO" not in _title(5, t5)
    t6 = synthetic(6, lambda row, metric, seed: 50.0)
    assert "test server" not in _title(6, t6) and "COCO" not in _md(6, t6)


def test_standin_results_say_they_are_not_comparable():
    standin = synthetic(8, lambda row, metric, seed: 20.0, profile="standin", data="standin")
    assert summaries.STANDIN in _title(8, standin) and summaries.STANDIN in _md(8, standin)
    real = synthetic(8, lambda row, metric, seed: 20.0)
    assert summaries.STANDIN not in _title(8, real) and summaries.STANDIN not in _md(8, real)


def test_every_table_markdown_links_the_protocol_differences():
    for number in TABLES:
        assert "[docs/protocol.md](../docs/protocol.md)" in _md(number, synthetic(number, lambda r, m, s: 10.0))


def _axes_texts(ax):
    return [t.get_text() for t in ax.texts]


def test_plot_tells_a_measured_zero_from_a_missing_value():
    values = {"RefineNet-Res101": 0.0, "RefineNet-Res152": float("nan")}
    fig = plots.figure(6, measured.normalise(synthetic(6, lambda row, metric, seed: values[row.label])))
    ax = fig.axes[0]
    assert _axes_texts(ax) == ["47.1", "0.0", "47.3", "n/a"]
    hatched = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch()]
    assert len(hatched) == 1 and not hatched[0].get_fill()
    plt.close(fig)


def test_plot_keeps_a_value_label_off_the_chance_line():
    values = {"RefineNet-Res101": 0.0, "RefineNet-Res152": 30.0}
    frame = synthetic(6, lambda row, metric, seed: values[row.label], chance=5.0)
    fig = plots.figure(6, measured.normalise(frame))
    zero = next(t for t in fig.axes[0].texts if t.get_text() == "0.0")
    assert zero.get_position()[1] > 5.0
    plt.close(fig)


def test_plot_says_when_the_results_carry_no_chance_baseline():
    without = plots.figure(6, measured.normalise(old_schema(synthetic(6, lambda r, m, s: 30.0))))
    assert "no chance baseline in these results" in [t.get_text() for t in without.legends[0].get_texts()]
    plt.close(without)
    with_chance = plots.figure(6, measured.normalise(synthetic(6, lambda r, m, s: 30.0)))
    labels = [t.get_text() for t in with_chance.legends[0].get_texts()]
    assert "chance (majority class)" in labels and "no chance baseline in these results" not in labels
    plt.close(with_chance)


def test_plot_draws_units_chance_and_seed_range():
    frame = synthetic(1, lambda row, metric, seed: 40.0 + 2 * seed, seeds=(0, 1, 2), chance=3.0)
    fig = plots.figure(1, measured.normalise(frame))
    ax = fig.axes[0]
    assert ax.get_ylabel() == "mean IoU (%)"
    dashed = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_linestyle()[0][1]]
    assert [seg[0][1] for c in dashed for seg in c.get_segments()] == [3.0]
    bars = [c for c in ax.collections if isinstance(c, LineCollection) and not c.get_linestyle()[0][1]]
    assert [(seg[0][1], seg[1][1]) for c in bars for seg in c.get_segments()] == [(40.0, 44.0)]
    plt.close(fig)


@pytest.mark.parametrize("number", [2, 4, 7])
def test_legend_sits_outside_the_data(number):
    fig = plots.figure(number, measured.normalise(synthetic(number, lambda row, metric, seed: 90.0, seeds=(0, 1))))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    assert not any(legend.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)
    plt.close(fig)


def test_table4_figure_shows_mean_iou_beside_the_per_class_panels():
    frame = synthetic(4, lambda row, metric, seed: 70.0 if metric == "miou" else 20.0)
    fig = plots.figure(4, measured.normalise(frame))
    first = fig.axes[0]
    assert first.get_ylabel() == "mean IoU (%)"
    assert [t.get_text() for t in first.get_xticklabels()] == [row.label for row in TABLES[4].rows]
    assert len(fig.axes) == 1 + len(TABLES[4].rows)
    plt.close(fig)


def test_main_writes_tables_and_claims_beside_the_csvs(tmp_path):
    write(synthetic(9, lambda row, metric, seed: 40.0, profile="standin", data="standin"), tmp_path, 9)
    assert table_report.main(["--results", str(tmp_path)]) == 0
    for name in ("table9.md", "table9.png", "claims.csv", "claims.md"):
        assert (tmp_path / name).is_file()
    lines = claims.read(tmp_path / "claims.csv")
    table9 = lines[lines["table"] == "9"]
    assert len(table9) == 3 and set(table9["verdict"]) == {"not testable with this profile"}
    assert not list(tmp_path.glob(".*tmp"))


def test_rendering_one_table_refreshes_the_claims_from_every_csv(tmp_path):
    write(synthetic(9, lambda row, metric, seed: 40.0), tmp_path, 9)
    two = synthetic(2, lambda row, metric, seed: 40.0)
    write(two, tmp_path, 2)
    table_report.render(2, two, tmp_path)  # as the runner does after writing table2.csv
    lines = claims.read(tmp_path / "claims.csv")
    assert {"2", "9"} <= set(lines[lines["verdict"] != "not measured"]["table"])
    assert not (tmp_path / "table9.md").exists()


def test_a_failed_claims_rendering_keeps_the_previous_files(tmp_path, monkeypatch):
    write(synthetic(9, lambda row, metric, seed: 40.0), tmp_path, 9)
    assert table_report.main(["--results", str(tmp_path)]) == 0
    before = (tmp_path / "claims.md").read_text()

    def broken(lines):
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(claims, "markdown", broken)
    with pytest.raises(RuntimeError):
        table_report.main(["--results", str(tmp_path)])
    assert (tmp_path / "claims.md").read_text() == before
    assert not list(tmp_path.glob(".*tmp"))


def test_results_view_is_one_line_per_number():
    frame = measured.normalise(synthetic(7, lambda row, metric, seed: 30.0 + seed, seeds=(0, 1), chance=10.0))
    view = summaries.results_view(frame)
    assert len(view) == 6 and set(view["vs chance"]) == {"learned"}
    assert set(view["measured"]) == {"30.5 ± 0.7 (2 seeds)"}
    assert isinstance(view, pd.DataFrame)
