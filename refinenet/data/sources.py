"""Where each dataset's public release comes from: one declarative table (read by refinenet/data/download.py).

Checksums: only the ones the providers (or torchvision, for VOC and SBD) publish; they are read from the
installed torchvision package, never copied here. Everything else has `md5=None`: its SHA-256 is computed
after the transfer and written to the dataset's manifest. Cityscapes publishes an MD5 per package behind its
login; it is fetched at download time.

Sizes are the providers' published figures (approximate; none could be checked from this machine, which has no
internet). They size the disk-space check and `--dry-run`; the transfer itself trusts the server's
Content-Length. URLs marked `unverified` in their note are our best knowledge, not checked against the live host.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1_000_000_000
MB = 1_000_000


@dataclass(frozen=True)
class Source:
    """One file to fetch. `file` is its name under ROOT/downloads/ and under `--mirror URL/`."""

    file: str
    url: str
    size: int  # bytes, approximate (the provider's figure)
    md5: str | None = None  # the published checksum; None: none is published
    checksum_source: str = ""  # where `md5` comes from
    unpack: bool = True  # an archive unpacked into the dataset's raw folder; else the file is linked there
    place: str = ""  # a file that is not unpacked: its path under the raw folder (default: `file`)
    cityscapes_package: int | None = None  # needs the Cityscapes login; the package's id on their site
    note: str = ""


@dataclass(frozen=True)
class DatasetDownload:
    """Everything `refinenet download NAME` fetches for one dataset, and how it becomes `ROOT/<dataset>`."""

    name: str  # the dataset's name (refinenet.data.DATASET_NAMES, or coco): the folder ROOT/<name>
    sources: tuple[Source, ...]
    converter: str | None  # the `refinenet prepare` converter run on the raw folder; None: read as unpacked
    disk: int  # bytes the unpacked and converted copy needs besides the downloads (approximate)
    licence: str  # the terms a user accepts by downloading
    # (path under the raw folder, glob under the raw folder): links the converter's RAW layout needs where an
    # archive puts a file elsewhere (the glob's first match, sorted)
    links: tuple[tuple[str, str], ...] = ()
    note: str = ""


def _voc(year: str) -> Source:
    from torchvision.datasets.voc import DATASET_YEAR_DICT  # the published URL and MD5, as torchvision keeps them

    entry = DATASET_YEAR_DICT[year]
    size = {"2012": 1_999_639_040, "2010": 1_325_465_600}[year]
    return Source(entry["filename"], entry["url"], size, entry["md5"], "torchvision.datasets.voc.DATASET_YEAR_DICT",
                  note="torchvision's mirror of the official host host.robots.ox.ac.uk; size approximate")


def _sbd() -> Source:
    from torchvision.datasets import SBDataset

    return Source(SBDataset.filename, SBDataset.url, 1_419_539_633, SBDataset.md5, "torchvision.datasets.SBDataset.md5",
                  note="Hariharan et al.'s release page (Berkeley)")


def _pascal_context() -> Source:
    return Source("pascal-context-trainval.tar.gz", "https://cs.stanford.edu/~roozbeh/pascal-context/trainval.tar.gz",
                  31 * MB, note="Mottaghi et al.'s page; served as trainval.tar.gz; its contents (trainval/*.mat, "
                                "labels.txt) as documented by the converter, not checked against the live file")


def _ankurhanda(repo: str, name: str, size: int) -> Source:
    return Source(name, f"https://github.com/ankurhanda/{repo}/raw/master/{name}", size, unpack=False,
                  note=f"ankurhanda/{repo} on GitHub (the lists the suite's converter documents)")


def _coco(name: str, url: str, size: int) -> Source:
    return Source(name, url, size, note="cocodataset.org publishes no checksums")


def _cityscapes(name: str, package: int, size: int) -> Source:
    return Source(name, f"https://www.cityscapes-dataset.com/file-handling/?packageID={package}", size,
                  checksum_source="https://www.cityscapes-dataset.com/md5-sum/?packageID=N (after login)",
                  cityscapes_package=package)


VOC_LICENCE = ("PASCAL VOC: images from flickr, used under flickr's terms of use; annotations for research "
               "(host.robots.ox.ac.uk/pascal/VOC)")


def download_table() -> dict[str, DatasetDownload]:
    """Download name -> what it fetches. Built on call: the VOC and SBD entries read torchvision."""
    voc2012 = DatasetDownload(
        "voc2012", (_voc("2012"), _sbd()), "sbd", 4 * GB,
        f"{VOC_LICENCE}; SBD (Hariharan et al. 2011): for research, images are VOC's",
        note="train_aug (10582) is computed by `refinenet prepare sbd` as (VOC train | SBD train | SBD val) - VOC "
             "val, DeepLab's definition, instead of fetching a third-party list; VOC's test images need the "
             "evaluation server's login and are not fetched")
    voc2010 = _voc("2010")
    table = {
        "voc2012": voc2012,
        "pascal_context": DatasetDownload(
            "pascal_context", (voc2010, _pascal_context()), "pascal_context", 2 * GB,
            f"{VOC_LICENCE}; PASCAL-Context annotations (Mottaghi et al. 2014): for research",
            note="the 59 classes are checked against labels.txt; the splits are VOC 2010's own train/val lists"),
        "nyudv2": DatasetDownload(
            "nyudv2",
            (Source("nyu_depth_v2_labeled.mat", "http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/"
                    "nyu_depth_v2_labeled.mat", 2_972_037_809, unpack=False,
                    note="Silberman et al.'s NYU Depth V2 page; no checksum published"),
             _ankurhanda("nyuv2-meta-data", "splits.mat", 3_000),
             _ankurhanda("nyuv2-meta-data", "classMapping40.mat", 10_000)),
            "nyudv2", 1 * GB, "NYU Depth V2 (Silberman et al. 2012): for research, cite the paper"),
        "sunrgbd": DatasetDownload(
            "sunrgbd",
            (Source("SUNRGBD.zip", "https://rgbd.cs.princeton.edu/data/SUNRGBD.zip", 6_900 * MB,
                    note="Song et al.'s page; size approximate"),
             Source("SUNRGBDtoolbox.zip", "https://rgbd.cs.princeton.edu/data/SUNRGBDtoolbox.zip", 600 * MB,
                    note="Song et al.'s page; size unverified (holds Metadata/SUNRGBD2Dseg.mat)"),
             _ankurhanda("sunrgbd-meta-data", "sunrgbd_training_images.txt", 500_000),
             _ankurhanda("sunrgbd-meta-data", "sunrgbd_testing_images.txt", 500_000)),
            "sunrgbd", 14 * GB,
            "SUN RGB-D (Song et al. 2015): for research; it includes NYU Depth V2, B3DO and SUN3D images under "
            "their own terms"),
        "ade20k": DatasetDownload(
            "ade20k",
            (Source("ADEChallengeData2016.zip", "http://data.csail.mit.edu/places/ADEchallenge/"
                    "ADEChallengeData2016.zip", 923 * MB, note="MIT Scene Parsing Benchmark page; no checksum"),),
            None, 1 * GB, "ADE20K / MIT Scene Parsing: images for non-commercial research and education "
                          "(groups.csail.mit.edu/vision/datasets/ADE20K terms)"),
        "person_part": DatasetDownload(
            "person_part",
            (voc2010,
             Source("pascal-part-trainval.tar.gz", "https://roozbehm.info/pascal-parts/trainval.tar.gz", 80 * MB,
                    note="Chen et al.'s PASCAL-Part page; served as trainval.tar.gz (Annotations_Part/*.mat); "
                         "size approximate"),
             Source("pascal_person_part.tar.gz", "http://liangchiehchen.com/data/pascal_person_part.tar.gz",
                    70 * MB, note="unverified URL: Chen et al.'s Person-Part release with train_id.txt / "
                                  "val_id.txt, linked from liangchiehchen.com/projects/Datasets.html; size "
                                  "unverified; only the two id lists are used")),
            "person_part", 2 * GB,
            f"{VOC_LICENCE}; PASCAL-Part and Person-Part annotations (Chen et al. 2014): for research",
            links=(("JPEGImages", "VOCdevkit/VOC2010/JPEGImages"), ("train_id.txt", "**/train_id.txt"),
                   ("val_id.txt", "**/val_id.txt"))),
        "cityscapes": DatasetDownload(
            "cityscapes",
            (_cityscapes("gtFine_trainvaltest.zip", 1, 241 * MB),
             _cityscapes("leftImg8bit_trainvaltest.zip", 3, 11 * GB)),
            "cityscapes", 12 * GB,
            "Cityscapes: an account and the Cityscapes licence (non-commercial use only; "
            "www.cityscapes-dataset.com/license)"),
        "coco": DatasetDownload(
            "coco",
            (_coco("train2014.zip", "http://images.cocodataset.org/zips/train2014.zip", 13_510_573_713),
             _coco("val2014.zip", "http://images.cocodataset.org/zips/val2014.zip", 6_645_013_297),
             _coco("annotations_trainval2014.zip",
                   "http://images.cocodataset.org/annotations/annotations_trainval2014.zip", 252_872_794)),
            None, 20 * GB,
            "MS COCO: annotations CC BY 4.0; images under the flickr terms of use of each image's licence "
            "(cocodataset.org/#termsofuse)"),
    }
    return table


# `sbd` names SBD's converter; SBD is only used through VOC's train_aug, so it downloads what voc2012 does.
ALIASES = {"sbd": "voc2012"}
DOWNLOAD_NAMES = ("voc2012", "sbd", "pascal_context", "nyudv2", "sunrgbd", "ade20k", "person_part", "cityscapes",
                  "coco")
