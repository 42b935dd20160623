"""`refinenet download` against a local mirror (tests/http_mirror.py) serving small archives in the real layouts,
built with the stand-in writers: fetch, verify, unpack, convert; resume; refusals; --dry-run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from refinenet import data
from refinenet.cli import main
from refinenet.data import download as dl
from refinenet.data.common import STANDIN_MARKER
from tests.http_mirror import Mirror


def _tar(path: Path, base: Path, members: list[str]) -> None:
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as tar:
        for member in members:
            tar.add(base / member, arcname=member)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def voc_mirror(tmp_path_factory):
    """VOCtrainval_11-May-2012.tar (VOCdevkit/) and benchmark.tgz (benchmark_RELEASE/) made from a VOC stand-in."""
    base = tmp_path_factory.mktemp("standin")
    data.write_standin("voc2012", base, train=2, val=2, size=(32, 40), seed=0)
    served = tmp_path_factory.mktemp("served")
    _tar(served / "VOCtrainval_11-May-2012.tar", base, ["VOCdevkit", STANDIN_MARKER])
    _tar(served / "benchmark.tgz", base, ["benchmark_RELEASE", STANDIN_MARKER])
    return served


def _published(source, served: Path) -> str | None:
    return _md5(served / source.file) if source.md5 and (served / source.file).is_file() else source.md5


def _size(source, served: Path) -> int:
    return (served / source.file).stat().st_size if (served / source.file).is_file() else source.size


@pytest.fixture
def table_for(monkeypatch):
    """Make the download table's published MD5s those of the served stand-in archives (their names unchanged), or
    with `md5=False` drop every checksum."""

    def patch(served: Path, md5: bool = True):
        real = dl.download_table()

        def table():
            out = {}
            for name, entry in real.items():
                sources = tuple(dataclasses.replace(s, md5=_published(s, served) if md5 else None,
                                                    size=_size(s, served)) for s in entry.sources)
                out[name] = dataclasses.replace(entry, sources=sources, disk=1000)
            return out

        monkeypatch.setattr(dl, "download_table", table)

    return patch


def test_download_then_prepare_gives_a_root_the_loaders_read(voc_mirror, table_for, tmp_path, capsys):
    table_for(voc_mirror)
    root = tmp_path / "data"
    with Mirror(voc_mirror) as mirror:
        assert main(["download", "voc2012", "--root", str(root), "--mirror", mirror.url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"--data-root {root.resolve()}" in out
    assert "md5" in out and "verified" in out and "sha256" in out
    train_aug = data.load_dataset("voc2012", root / "voc2012", "train_aug")
    assert len(train_aug) > 0 and train_aug.data_kind == "standin"
    assert len(data.load_dataset("voc2012", root / "voc2012", "val")) == 2
    manifest = (root / "voc2012" / dl.MANIFEST).read_text()
    assert "VOCtrainval_11-May-2012.tar" in manifest and "benchmark.tgz" in manifest
    # a re-run finds it ready and fetches nothing
    with Mirror(voc_mirror) as mirror:
        assert main(["download", "sbd", "--root", str(root), "--mirror", mirror.url, "--no-progress"]) == 0
        assert mirror.requests == []


def test_an_interrupted_transfer_resumes_past_zero(voc_mirror, table_for, tmp_path):
    table_for(voc_mirror)
    root = tmp_path / "data"
    with Mirror(voc_mirror) as mirror:
        mirror.cut_once.add("VOCtrainval_11-May-2012.tar")  # the first transfer stops half-way
        assert main(["download", "voc2012", "--root", str(root), "--mirror", mirror.url, "--no-progress"]) == 0
        ranges = [r for name, r in mirror.requests if name == "VOCtrainval_11-May-2012.tar"]
    assert ranges[0] is None and ranges[1] is not None
    start = int(ranges[1].removeprefix("bytes=").split("-")[0])
    assert 0 < start < (voc_mirror / "VOCtrainval_11-May-2012.tar").stat().st_size
    name = "VOCtrainval_11-May-2012.tar"
    assert (root / "downloads" / name).read_bytes() == (voc_mirror / name).read_bytes()


def test_a_partial_file_from_an_earlier_run_is_continued(voc_mirror, table_for, tmp_path):
    table_for(voc_mirror)
    root = tmp_path / "data"
    whole = (voc_mirror / "VOCtrainval_11-May-2012.tar").read_bytes()
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "VOCtrainval_11-May-2012.tar.part").write_bytes(whole[:1000])
    with Mirror(voc_mirror) as mirror:
        assert main(["download", "voc2012", "--root", str(root), "--mirror", mirror.url, "--no-progress"]) == 0
        assert ("VOCtrainval_11-May-2012.tar", "bytes=1000-") in mirror.requests
    assert (root / "downloads" / "VOCtrainval_11-May-2012.tar").read_bytes() == whole


def test_a_wrong_checksum_is_refused_with_one_error_line(voc_mirror, tmp_path, capsys):
    # torchvision's published MD5 of the real VOC archive: the stand-in archive cannot match it
    root = tmp_path / "data"
    with Mirror(voc_mirror) as mirror:
        assert main(["download", "voc2012", "--root", str(root), "--mirror", mirror.url, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: VOCtrainval_11-May-2012.tar from http://127.0.0.1")
    assert "checksum mismatch" in err[0] and "6cd6e144f989b92b3379bac3b3de84fd" in err[0]
    assert not (root / "voc2012").exists()
    assert not (root / "downloads" / "VOCtrainval_11-May-2012.tar").exists()


def test_a_truncated_archive_is_refused_and_a_rerun_continues(voc_mirror, table_for, tmp_path, capsys):
    served = tmp_path / "served"
    served.mkdir()
    whole = (voc_mirror / "benchmark.tgz").read_bytes()
    (served / "benchmark.tgz").write_bytes(whole[: len(whole) // 2])  # the mirror itself holds half the archive
    (served / "VOCtrainval_11-May-2012.tar").write_bytes((voc_mirror / "VOCtrainval_11-May-2012.tar").read_bytes())
    table_for(served, md5=False)  # no published checksum: the archive's own integrity must catch it
    root = tmp_path / "data"
    with Mirror(served) as mirror:
        assert main(["download", "voc2012", "--root", str(root), "--mirror", mirror.url, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: benchmark.tgz from {mirror.url}/benchmark.tgz")
        assert "truncated or corrupt archive" in err[0]
        assert not (root / "voc2012").exists()
        assert not list((root / "raw").glob(".*.tmp"))  # nothing half-unpacked left
        (served / "benchmark.tgz").write_bytes(whole)  # the mirror is repaired: a re-run finishes
        mirror.requests.clear()
        assert main(["download", "voc2012", "--root", str(root), "--mirror", mirror.url, "--no-progress"]) == 0
        assert [name for name, _ in mirror.requests] == ["benchmark.tgz"]  # VOC's archive was kept
    assert len(data.load_dataset("voc2012", root / "voc2012", "train_aug")) > 0


def test_http_404_and_a_network_down_give_one_error_line(tmp_path, capsys):
    root = tmp_path / "data"
    with Mirror(tmp_path) as mirror:
        assert main(["download", "ade20k", "--root", str(root), "--mirror", mirror.url, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: ADEChallengeData2016.zip from {mirror.url}/ADEChallengeData2016.zip: HTTP 404 (Not Found)"]
    # the server is gone now: the connection is refused on every try
    assert main(["download", "ade20k", "--root", str(root), "--mirror", mirror.url, "--retries", "1",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ADEChallengeData2016.zip from" in err[0] and "network failed 2 times" in err[0]


def test_coco_zips_are_unpacked_and_read_as_shipped(tmp_path, table_for):
    base = tmp_path / "standin"
    data.write_standin("coco", base, train=2, val=1, size=(32, 40), seed=0)
    served = tmp_path / "served"
    served.mkdir()
    for name, members in (("train2014.zip", ["train2014"]), ("val2014.zip", ["val2014"]),
                          ("annotations_trainval2014.zip", ["annotations", STANDIN_MARKER])):
        with zipfile.ZipFile(served / name, "w") as z:
            for member in members:
                for path in sorted([base / member, *(base / member).rglob("*")]):
                    z.write(path, path.relative_to(base))
    table_for(served)
    root = tmp_path / "data"
    with Mirror(served) as mirror:
        assert main(["download", "coco", "--root", str(root), "--mirror", mirror.url, "--no-progress"]) == 0
    assert len(data.load_dataset("coco", root / "coco", "train")) == 2
    manifest = json.loads((root / "coco" / dl.MANIFEST).read_text())
    assert [f["md5"] for f in manifest["files"]] == [None, None, None]  # cocodataset.org publishes none
    assert all(len(f["sha256"]) == 64 for f in manifest["files"])


def test_dry_run_lists_everything_and_writes_nothing(tmp_path, capsys):
    root = tmp_path / "nothing-here"
    assert main(["download", "all", "--root", str(root), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for entry in dl.download_table().values():
        for source in entry.sources:
            assert source.url in out and str(root / "downloads" / source.file) in out
    assert "6cd6e144f989b92b3379bac3b3de84fd" in out  # VOC's published MD5
    assert "licence" in out and "disk needed" in out
    assert not root.exists()


def test_not_enough_disk_is_refused_before_anything_is_fetched(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: type("u", (), {"free": 10**6})())
    assert main(["download", "coco", "--root", str(tmp_path / "d"), "--mirror", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: not enough disk under") and "coco" in err[0]


def test_cityscapes_without_credentials_says_what_to_do(tmp_path, capsys, monkeypatch):
    for var in ("CITYSCAPES_USERNAME", "CITYSCAPES_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("sys.stdin", open("/dev/null"))
    monkeypatch.setattr(dl, "check_disk", lambda root, entries: None)
    assert main(["download", "cityscapes", "--root", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CITYSCAPES_USERNAME" in err[0] and "csDownload" in err[0]


def test_a_disk_that_fills_during_a_transfer_names_the_file_and_url(voc_mirror, table_for, tmp_path, capsys,
                                                                    monkeypatch):
    table_for(voc_mirror)
    monkeypatch.setattr(dl, "check_disk", lambda root, entries: None)  # the check before the start passed...
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: type("u", (), {"free": 100})())  # ...then it filled
    root = tmp_path / "data"
    with Mirror(voc_mirror) as mirror:
        assert main(["download", "voc2012", "--root", str(root), "--mirror", mirror.url, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: VOCtrainval_11-May-2012.tar from {mirror.url}/")
    assert "disk is full" in err[0]
    assert not (root / "voc2012").exists()
