"""MS COCO read as VOC's 21 classes (refinenet/data/coco.py): the class mapping on a hand-made annotation file,
the image selection, and the stand-in in COCO's layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from refinenet import data
from refinenet.atomic import save_jpeg
from refinenet.cli import main
from refinenet.data import coco
from refinenet.data.common import DatasetLayoutError


def _polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _write(root, annotations, images=((1, 40, 30), (2, 40, 30)), categories=None):
    for image_id, width, height in images:
        save_jpeg(root / "train2014" / f"COCO_train2014_{image_id:012d}.jpg", np.zeros((height, width, 3), np.uint8))
    categories = categories or [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}, {"id": 27, "name": "backpack"}]
    content = {"images": [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "width": w, "height": h}
                          for i, w, h in images],
               "annotations": annotations, "categories": categories}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_train2014.json").write_text(json.dumps(content))


def test_voc_categories_map_by_coco_id_others_are_background_crowds_void(tmp_path):
    _write(tmp_path, [
        # image 1: a dog (COCO 18 -> VOC 12), a backpack (COCO 27, not VOC -> background), a person crowd (255)
        {"id": 1, "image_id": 1, "category_id": 18, "iscrowd": 0, "area": 100.0,
         "segmentation": _polygon(0, 0, 10, 10)},
        {"id": 2, "image_id": 1, "category_id": 27, "iscrowd": 0, "area": 100.0,
         "segmentation": _polygon(20, 0, 30, 10)},
        {"id": 3, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 100.0,
         "segmentation": _polygon(0, 20, 10, 29)},
        # image 2: only a backpack: no VOC class, so not listed
        {"id": 4, "image_id": 2, "category_id": 27, "iscrowd": 0, "area": 100.0, "segmentation": _polygon(0, 0, 5, 5)},
    ])
    ds = data.load_dataset("coco", tmp_path, "train")
    assert len(ds) == 1 and ds.pairs[0][0].name == "COCO_train2014_000000000001.jpg"
    image, label = ds.load(0)
    assert label.shape == (30, 40) == image.shape[:2]
    dog = data.dataset_info("voc2012").class_names.index("dog")
    assert dog == coco.VOC_CATEGORY_IDS[18] == 12
    assert label[5, 5] == dog  # inside the dog
    assert label[5, 25] == 0  # the backpack is background
    assert label[25, 5] == 255  # the crowd is void
    assert label[15, 35] == 0
    assert ds.num_classes == 21


def test_every_voc_class_has_its_coco_category():
    names = data.dataset_info("voc2012").class_names
    assert sorted(coco.VOC_CATEGORY_IDS.values()) == list(range(1, 21))
    by_voc = {voc: coco.VOC_CATEGORIES[voc - 1][1] for voc in range(1, 21)}
    assert by_voc[names.index("tvmonitor")] == "tv" and by_voc[names.index("sofa")] == "couch"
    assert by_voc[names.index("aeroplane")] == "airplane" and by_voc[names.index("motorbike")] == "motorcycle"


def test_a_file_with_another_category_numbering_is_refused(tmp_path):
    _write(tmp_path, [{"id": 1, "image_id": 1, "category_id": 18, "iscrowd": 0, "area": 1.0,
                       "segmentation": _polygon(0, 0, 5, 5)}],
           categories=[{"id": 18, "name": "cat"}])
    with pytest.raises(DatasetLayoutError, match="category id 18 'cat', COCO's is 'dog'"):
        data.load_dataset("coco", tmp_path, "train")


def test_standin_coco_is_read_in_its_layout(tmp_path, capsys):
    out = tmp_path / "coco"
    assert main(["standin", "coco", "--out", str(out), "--train", "3", "--val", "2", "--size", "32", "40"]) == 0
    assert (out / "annotations" / "instances_train2014.json").is_file()
    assert (out / "val2014").is_dir()
    train = data.load_dataset("coco", out, "train")
    assert len(train) == 3 and train.data_kind == "standin"  # the image without a VOC class is left out
    assert len(data.load_dataset("coco", out, "val")) == 2
    labels = [train.load(i)[1] for i in range(len(train))]
    values = set(np.unique(np.concatenate([lab.ravel() for lab in labels])))
    assert 255 in values and 0 in values and values - {0, 255}  # crowd, background and VOC classes
    assert values <= set(range(21)) | {255}
