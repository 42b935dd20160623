"""The claims scorecard: paper deltas from the paper's data, verdicts computed from the results."""

import pandas as pd
import pytest
from results_fixtures import synthetic

from benchmarks.report import claims, measured
from benchmarks.report.claims import CLAIMS, BeatsOthers, Better, LessMemory
from benchmarks.tables.specs import TABLES

CRP = "chained residual pooling helps"


def _lines(frames, efficiency=None):
    return claims.evaluate({n: measured.normalise(f) for n, f in frames.items()}, efficiency)


def _one(lines, claim, dataset=None):
    hit = lines[(lines["claim"] == claim) & ((lines["dataset"] == dataset) if dataset else True)]
    assert len(hit) == 1, hit
    return hit.iloc[0]


def _table2(better_minus_worse, seeds=(0, 1, 2), **kw):
    """Table 2 where every 'pool yes' row scores `better_minus_worse` above the 'pool no' rows."""
    def value(row, metric, seed):
        return 40.0 + (better_minus_worse if "pool yes" in row.label else 0.0)
    return synthetic(2, value, seeds=seeds, **kw)


def test_every_claim_names_rows_of_its_table_spec():
    for claim in CLAIMS:
        if isinstance(claim, Better):
            labels = {row.label for row in TABLES[claim.table].rows if row.dataset == claim.dataset}
            assert {claim.worse, claim.better} <= labels, claim
        elif isinstance(claim, BeatsOthers):
            assert claim.row in {row.label for row in TABLES[claim.table].rows}, claim
            assert claim.metric in next(r for r in TABLES[claim.table].rows if r.label == claim.row).metrics
        else:
            assert isinstance(claim, LessMemory)


def test_paper_deltas_are_computed_from_the_paper_data():
    lines = claims.evaluate({}, None)
    assert _one(lines, CRP, "nyudv2")["paper_delta"] == pytest.approx(42.5 - 40.4)
    assert _one(lines, CRP, "person_part")["paper_delta"] == pytest.approx(65.7 - 64.1)
    assert _one(lines, "4-cascaded beats 2-cascaded")["paper_delta"] == pytest.approx(42.5 - 40.9)
    assert _one(lines, "dense CRF adds a little on VOC val")["paper_delta"] == pytest.approx(0.1)  # Sec. 4.2 text
    sota4 = lines[(lines["table"] == "4") & lines["claim"].str.startswith("RefineNet beats")].iloc[0]
    assert sota4["paper_delta"] == pytest.approx(83.4 - 80.2) and "CSupelec-Res101" in sota4["compared"]
    assert set(lines["verdict"]) == {"not measured"}


def test_standin_results_are_not_testable_but_show_the_measured_delta():
    lines = _lines({2: _table2(3.0, profile="standin", data="standin")})
    line = _one(lines, CRP, "nyudv2")
    assert line["verdict"] == "not testable with this profile"
    assert line["reason"] == claims.STANDIN_REASON
    assert line["measured_delta"] == pytest.approx(3.0)


def test_smoke_profile_is_not_testable_either():
    line = _one(_lines({2: _table2(3.0, profile="smoke", data="real")}), CRP, "nyudv2")
    assert line["verdict"] == "not testable with this profile" and "smoke" in line["reason"]


@pytest.mark.parametrize(("delta", "noise", "verdict"), [
    (3.0, 0.5, "held"),                 # claimed sign, beyond the spread
    (0.2, 1.0, "within seed spread"),   # |delta| below the per-seed spread
    (-3.0, 0.5, "not held"),            # the other sign, beyond the spread
])
def test_real_data_verdicts_weigh_the_delta_against_the_seed_spread(delta, noise, verdict):
    # the 'pool yes' rows move by +-noise with the seed, so the per-seed delta has standard deviation `noise`
    def value(row, metric, seed):
        jitter = noise * (1 if seed == 1 else -1 if seed == 2 else 0) * ("pool yes" in row.label)
        return 40.0 + (delta if "pool yes" in row.label else 0.0) + jitter
    line = _one(_lines({2: synthetic(2, value, seeds=(0, 1, 2))}), CRP, "nyudv2")
    assert line["verdict"] == verdict
    assert line["seeds"] == 3 and line["spread"] == pytest.approx(noise)
    assert line["measured_delta"] == pytest.approx(delta)


def test_one_seed_decides_by_sign_and_says_so():
    up = _one(_lines({2: _table2(0.01, seeds=(0,))}), CRP, "nyudv2")
    assert up["verdict"] == "held" and up["seeds"] == 1 and "seeds=1" in up["reason"]
    down = _one(_lines({2: _table2(-0.01, seeds=(0,))}), CRP, "nyudv2")
    assert down["verdict"] == "not held"


def test_missing_rows_and_tables_are_not_measured():
    frame = _table2(3.0)
    frame = frame[frame["row"] != "ResNet-50, pool no, msc no"]
    line = _one(_lines({2: frame}), CRP, "nyudv2")
    assert line["verdict"] == "not measured" and "ResNet-50, pool no, msc no" in line["reason"]
    nine = _one(_lines({2: frame}), "2-cascaded beats single")
    assert nine["verdict"] == "not measured" and "table9.csv" in nine["reason"]


def test_rows_without_released_weights_are_not_measured_and_say_why():
    frame = synthetic(2, lambda row, metric, seed: 40.0, profile="released")
    unweighted = frame["dataset"] == "person_part"  # no checkpoint was released for Person-Part
    frame.loc[unweighted, ["measured_value", "data", "seed"]] = None
    frame.loc[unweighted, "note"] = "no released weights"
    lines = _lines({2: frame})
    line = _one(lines, CRP, "person_part")
    assert line["verdict"] == "not measured"
    assert line["reason"] == ("row ResNet-50, pool no, msc no not measured (no released weights); "
                              "row ResNet-50, pool yes, msc no not measured (no released weights)")
    assert _one(lines, CRP, "nyudv2")["profile"] == "released"  # the measured rows are still compared


def test_state_of_the_art_compares_with_the_best_other_method():
    lines = _lines({8: synthetic(8, lambda row, metric, seed: 36.0)})
    line = lines[lines["table"] == "8"].iloc[0]
    assert "Cascaded-DilatedNet" in line["compared"]
    assert line["measured_delta"] == pytest.approx(36.0 - 34.9) and line["verdict"] == "held"
    worse = _lines({8: synthetic(8, lambda row, metric, seed: 30.0)})
    assert worse[worse["table"] == "8"].iloc[0]["verdict"] == "not held"


def test_state_of_the_art_on_val_against_test_server_numbers_says_so():
    lines = _lines({5: synthetic(5, lambda row, metric, seed: 75.0)})
    line = lines[lines["table"] == "5"].iloc[0]
    assert line["verdict"] == "held" and "measured on val, the others on test" in line["reason"]


def _efficiency(ratios: dict[int, float]) -> pd.DataFrame:
    rows = []
    for size, ratio in ratios.items():
        for model, value in (("RefineNet-101", ratio * 100.0), ("Dilated-ResNet-101-OS4", 100.0),
                             ("Dilated-ResNet-101-OS8", 50.0)):
            rows.append({"model": model, "input_size": str(size), "setting": "any",
                         "measurement": "train_saved_activation_bytes", "value": value, "code_version": "abc"})
    rows.append({"model": "RefineNet-101", "input_size": "375x500", "setting": "channels_last",
                 "measurement": "time_single_scale", "value": 1.0, "code_version": "abc"})
    return pd.DataFrame(rows)


def test_efficiency_claims_take_their_ratios_from_the_csv():
    lines = claims.evaluate({}, _efficiency({256: 0.25, 512: 0.2}))
    os4 = lines[lines["compared"].str.contains("OS4")].iloc[0]
    assert os4["verdict"] == "held" and os4["measured_delta"] == pytest.approx(0.2) and "512x512" in os4["reason"]
    os8 = lines[lines["compared"].str.contains("OS8")].iloc[0]
    assert os8["verdict"] == "held" and os8["measured_delta"] == pytest.approx(20.0 / 50.0)
    mixed = claims.evaluate({}, _efficiency({256: 1.1, 512: 0.2}))
    assert mixed[mixed["compared"].str.contains("OS4")].iloc[0]["verdict"] == "not held"
    none = claims.evaluate({}, None)
    assert set(none[none["table"] == "efficiency"]["verdict"]) == {"not measured"}


def test_claims_csv_round_trips_and_the_markdown_states_the_rules(tmp_path):
    lines = _lines({2: _table2(3.0), 9: synthetic(9, lambda row, metric, seed: 40.0, dirty=True)})
    (tmp_path / "claims.csv").write_text(lines.to_csv(index=False))
    pd.testing.assert_frame_equal(claims.read(tmp_path / "claims.csv"), lines, check_dtype=False)
    md = claims.markdown(lines)
    assert claims.rules_markdown() in md and "within seed spread" in claims.rules_markdown()
    assert "FROM A DIRTY TREE" in md and "(../docs/protocol.md)" in md
    assert md.count("\n| ") == len(lines) + 1  # header + one line per claim


def test_voc_claims_made_with_and_without_ms_coco_are_separate_lines():
    with_coco = synthetic(4, lambda row, metric, seed: 84.0)
    with_coco["model_key"] = with_coco["model_key"].astype(str) + "-from-coco-0123456789abcdef"
    without = synthetic(4, lambda row, metric, seed: 70.0)
    without["model_key"] = "voc2012-resnet152-4-cascaded-pool4-paper-it100000-seed0-0123456789abcdef"
    lines = _lines({4: pd.concat([with_coco, without], ignore_index=True)})
    sota = lines[(lines["table"] == "4") & lines["claim"].str.startswith("RefineNet beats")]
    assert list(sota["coco"]) == ["with", "without"]
    assert list(sota["measured_delta"]) == [pytest.approx(84.0 - 80.2), pytest.approx(70.0 - 80.2)]
    assert claims.WITHOUT_COCO in sota.iloc[1]["reason"] and claims.WITHOUT_COCO not in sota.iloc[0]["reason"]
    assert set(_lines({8: synthetic(8, lambda row, metric, seed: 36.0)})["coco"]) == {""}  # not a VOC table
    assert "| MS COCO |" in claims.markdown(lines)
