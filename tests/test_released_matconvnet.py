"""`--profile released` with the authors' MatConvNet models: a row served by `refinenet_res101_<dataset>.mat`
is evaluated from its conversion, with the file's name, its SHA-256 and a note on how the model differs from
the row; a missing file is named per row with where it comes from.

The file is written in the real container at a reduced width (tests/matconvnet_files.py); the data is a tiny
stand-in Person-Part.
"""

from __future__ import annotations

import hashlib

import matconvnet_files as mf
import pandas as pd
import pytest

from benchmarks.reproduce import main as reproduce
from benchmarks.tables import released
from refinenet import data

FILE = "refinenet_res101_person_parts.mat"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("released-mat")
    data.write_standin("person_part", base / "raw", train=1, val=2, size=(48, 64), seed=0)
    data.prepare("person_part", base / "raw", base / "data" / "person_part")
    (base / "weights").mkdir()
    # as the authors' README says of the Person-Parts model: improved residual pooling; 7 classes, no void
    mf.write_refinenet_mat(base / "weights" / FILE, depth=101, width=4, features=8, top_features=16, num_classes=7,
                           pool_order="conv_pool", pooling_blocks=4)
    return base


def args(base, *extra):
    return ["--profile", "released", "--weights", str(base / "weights"), "--data-root", str(base / "data"),
            "--results", str(base / "results"), "--cache", str(base / "cache"), "--no-progress", *extra]


def test_a_row_served_by_the_authors_file_is_measured_from_its_conversion(setup):
    assert reproduce(["1", *args(setup)]) == 0
    row = pd.read_csv(setup / "results" / "table1.csv").iloc[0]
    sha = hashlib.sha256((setup / "weights" / FILE).read_bytes()).hexdigest()
    assert row["checkpoint"] == FILE and row["checkpoint_sha256"] == sha and row["model_key"] == f"{FILE}@{sha[:16]}"
    assert row["profile"] == "released" and row["data"] == "standin" and 0 <= row["measured_value"] <= 100
    assert row["note"].startswith("improved residual pooling (conv before pool")
    assert list((setup / "cache" / "converted").glob(f"{sha}.pt"))  # converted once, by its SHA-256


def test_a_missing_authors_file_is_named_per_row_with_where_it_comes_from(setup, capsys):
    assert reproduce(["6", *args(setup)]) == 2
    err = capsys.readouterr().err
    assert "refinenet_res101_pascalcontext.mat" in err and "refinenet_res152_pascalcontext.mat" in err
    assert "RefineNet-Res152" in err and "Google Drive" in err and "CloudStor" in err and "Traceback" not in err


def test_every_authors_file_serves_its_rows():
    served = {name for table in released.TABLES.values() for row in table.rows for name in row.weights}
    assert set(released.AUTHORS_FILES) - served == {"refinenet_res152_cityscapes.mat"}  # Table 5 has Res101 only
    assert len(released.AUTHORS_FILES) == 14
