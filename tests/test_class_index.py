"""The class index of a split: what each image contains, scanned once, cached outside the dataset root."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refinenet import data
from refinenet.data.class_index import image_classes, images_per_class, index_path, load_class_index, scan_labels
from refinenet.data.common import LabelValueError


@pytest.fixture()
def voc(tmp_path):
    root = tmp_path / "voc"
    data.write_standin("voc2012", root, train=6, val=2, size=(40, 56), seed=4)
    return data.load_dataset("voc2012", root, "train")


def test_classes_of_each_image_are_the_labels_values_without_void(voc):
    for index in range(len(voc)):
        _, label = voc.load(index)
        expected = tuple(int(v) for v in np.unique(label) if v != 255)
        assert image_classes(voc, index) == expected and 0 in expected  # stand-in VOC has background everywhere
    assert scan_labels(voc, workers=3, progress=False) == [image_classes(voc, i) for i in range(len(voc))]
    counts = images_per_class(scan_labels(voc, progress=False), 21)
    assert counts[0] == len(voc) and counts.sum() == sum(len(c) for c in scan_labels(voc, progress=False))


def test_index_is_cached_outside_the_root_and_rebuilt_when_a_label_changes(voc, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_class_index(voc, cache, progress=False)
    path = index_path(voc, cache)
    assert path.is_file() and not list(voc.root.rglob("class_index-*"))
    calls = []
    monkeypatch.setattr("refinenet.data.class_index.scan_labels", lambda *a, **k: calls.append(1) or first)
    assert load_class_index(voc, cache, progress=False) == first and not calls  # read from the cache
    label_path = voc.pairs[0][1]
    with Image.open(label_path) as im:
        changed = np.asarray(im).copy()
    changed[:] = 0
    Image.fromarray(changed, mode="L").save(label_path)
    load_class_index(voc, cache, progress=False)
    assert calls == [1] and index_path(voc, cache) != path  # another key: scanned again


def test_undefined_label_values_are_an_error_naming_the_file(voc):
    label_path = voc.pairs[1][1]
    Image.fromarray(np.full((40, 56), 77, np.uint8), mode="L").save(label_path)
    with pytest.raises(LabelValueError, match=label_path.name):
        scan_labels(voc, progress=False)
