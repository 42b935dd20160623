"""SUN-RGBD with 37 classes (Song et al., CVPR 2015): paper Sec. 4.2, Table 7.

10335 RGB-D indoor images (5285 train, 5050 test) labelled with the first 37 classes of NYUDv2's
40 (the three "other..." classes dropped). The labels live in the SUNRGBD toolbox as one MATLAB
v7.3 file, `Metadata/SUNRGBD2Dseg.mat`, whose struct field `seglabel` holds one reference per
image, in the order of `Metadata/SUNRGBDMeta.mat`; `SUNRGBDMeta(i).rgbpath` says which image it
labels. The 5285/5050 split is taken from the image lists of ankurhanda/sunrgbd-meta-data
(`sunrgbd_training_images.txt`, `sunrgbd_testing_images.txt`), the lists RGB segmentation work uses.
`prepare` joins the three into (JPEG, PNG) pairs and id lists.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from refinenet.atomic import atomic_path, save_jpeg
from refinenet.data import nyudv2
from refinenet.data.common import (
    DatasetInfo,
    DatasetLayoutError,
    LabelValueError,
    SegmentationFiles,
    flat_dataset,
    read_split_list,
    require_path,
    shifted_lut,
    voc_colormap,
    write_standin_marker,
)
from refinenet.data.files import (
    carry_standin_marker,
    matlab_string,
    write_converted_pair,
    write_id_list,
    write_matlab73_header,
)
from refinenet.data.standin import paint_scene

CLASS_NAMES = nyudv2.CLASS_NAMES[:37]
SEG_MAT = "SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat"
META_MAT = "SUNRGBDtoolbox/Metadata/SUNRGBDMeta.mat"
SPLIT_LISTS = {"train": "sunrgbd_training_images.txt", "test": "sunrgbd_testing_images.txt"}
SPLIT_ALIASES = {"val": "test"}

LAYOUT = """\
<root>/                              written by `refinenet prepare sunrgbd --raw RAW --out <root>`
  images/train_000001.jpg ...        the original JPEGs, copied; numbered in the order of the split list
  labels/train_000001.png ...        uint8 37-class ids: 0 = unlabelled (ignored), 1..37 = classes
  train.txt                          5285 ids (line n = line n of sunrgbd_training_images.txt)
  test.txt                           5050 ids (line n = line n of sunrgbd_testing_images.txt)
RAW/ (what `prepare` reads, as downloaded)
  SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat   MATLAB v7.3: SUNRGBD2Dseg.seglabel, one W x H label per image
  SUNRGBDtoolbox/Metadata/SUNRGBDMeta.mat    SUNRGBDMeta(i).rgbpath = /n/fs/sun3d/data/SUNRGBD/.../image/X.jpg
  SUNRGBD/<sensor>/.../image/X.jpg           the images (SUNRGBD.zip unpacked here)
  sunrgbd_training_images.txt                5285 lines SUNRGBD/.../image/X.jpg  (ankurhanda/sunrgbd-meta-data)
  sunrgbd_testing_images.txt                 5050 lines"""

INFO = DatasetInfo(
    name="sunrgbd",
    # the authors' test-time short-edge clamp (guosheng/refinenet main/demo_predict_mscale_sunrgbd.m,
    # `run_config.input_img_short_edge_min/max`)
    test_short_edge=(450, 800),
    class_names=CLASS_NAMES,
    palette=voc_colormap(len(CLASS_NAMES) + 1)[1:],  # the VOC colours of the stored ids 1..N (none black)
    splits={"train": 5285, "test": 5050},
    layout=LAYOUT,
    notes=(
        "37 classes = the first 37 NYUDv2-40 names in the same order (the toolbox's seg37list spells a "
        "few differently, e.g. fridge/tv); label 0 (unlabelled) is ignored (255), 1..37 become train ids "
        "0..36. No validation set: split 'val' is an alias of 'test' (5050 images). Labels are read from "
        "the official SUNRGBDtoolbox .mat files; the split from ankurhanda/sunrgbd-meta-data's image "
        "lists. ankurhanda's already-converted image/label archives are not read (convert from the "
        "toolbox instead). RGB only, depth unused."
    ),
)


def sample_id(split: str, number: int) -> str:
    """The file stem of line `number` (1-based) of the split list."""
    return f"{split}_{number:06d}"


# Stored 37-class id -> train id: 0 (unlabelled) -> 255, 1..37 -> 0..36.
LABEL_LUT = shifted_lut(len(CLASS_NAMES))


def dataset(root: Path, split: str, transform=None) -> SegmentationFiles:
    """The prepared SUN-RGBD `split` under `root` (see LAYOUT); labels are train ids 0..36, 255 = unlabelled."""
    return flat_dataset(INFO, root, split, SPLIT_ALIASES, lut=LABEL_LUT, transform=transform)


# --- reading the raw release


def relative_image_path(path: str) -> str:
    """The part of an image path from its `SUNRGBD/` folder on, the key shared by SUNRGBDMeta.rgbpath
    ('/n/fs/sun3d/data/SUNRGBD/kv2/.../image/0000103.jpg') and the split lists ('SUNRGBD/kv2/...').

    Doubled slashes are collapsed: about 6800 lines of the real lists read '...-resize//image/...'.
    """
    parts = PurePosixPath(path.strip().replace("\\", "/")).parts
    if "SUNRGBD" not in parts:
        raise DatasetLayoutError(f"sunrgbd: image path {path!r} has no SUNRGBD/ folder")
    return "/".join(parts[parts.index("SUNRGBD") :])


def read_split_paths(path: Path) -> list[str]:
    """A split list (`sunrgbd_*_images.txt`) as relative image paths, in file order."""
    return [relative_image_path(line) for line in read_split_list(path, INFO)]


def read_rgb_paths(path: Path) -> list[str]:
    """SUNRGBDMeta(i).rgbpath for every i, as relative image paths.

    SUNRGBDMeta.mat is a MATLAB v7 file (scipy reads it); a v7.3 copy is read with h5py instead.
    """
    from scipy.io import loadmat

    require_path(path, INFO, "per-image metadata")
    try:
        meta = loadmat(path, variable_names=["SUNRGBDMeta"])
    except NotImplementedError:  # v7.3 = HDF5
        return _read_rgb_paths_hdf5(path)
    if "SUNRGBDMeta" not in meta or "rgbpath" not in (meta["SUNRGBDMeta"].dtype.names or ()):
        raise DatasetLayoutError(f"{path} has no struct array SUNRGBDMeta with a field rgbpath")
    return [relative_image_path(matlab_string(p)) for p in meta["SUNRGBDMeta"]["rgbpath"].ravel()]


def _read_rgb_paths_hdf5(path: Path) -> list[str]:
    import h5py

    with h5py.File(path, "r") as mat:
        refs = mat["SUNRGBDMeta"]["rgbpath"][()].ravel()
        # MATLAB v7.3 stores char arrays as uint16 code units.
        return [relative_image_path("".join(map(chr, np.asarray(mat[r]).ravel()))) for r in refs]


def read_seglabel(mat, references, index: int) -> np.ndarray:
    """Label of image `index` (0-based, SUNRGBDMeta order) as HxW uint8 37-class ids.

    Each reference points to a W x H array: MATLAB's column-major H x W seen through HDF5, so it is
    transposed back (not reshaped).
    """
    label = np.asarray(mat[references[index]]).T
    if label.size and (label.min() < 0 or label.max() > len(CLASS_NAMES)):
        raise LabelValueError(f"sunrgbd: seglabel {index + 1} holds values outside 0..{len(CLASS_NAMES)}")
    return np.ascontiguousarray(label.astype(np.uint8))


def prepare(raw: Path, out: Path) -> None:
    """Convert the toolbox labels + images + split lists (see LAYOUT); re-runs skip finished files."""
    import h5py
    from tqdm import tqdm

    raw, out = Path(raw), Path(out)
    require_path(raw, INFO, "raw release folder")
    splits = {split: read_split_paths(raw / name) for split, name in SPLIT_LISTS.items()}
    rgb_paths = read_rgb_paths(raw / META_MAT)
    index_of = {p: i for i, p in enumerate(rgb_paths)}
    seg_path = require_path(raw / SEG_MAT, INFO, "2D segmentation labels")
    carry_standin_marker(raw, out, INFO)

    with h5py.File(seg_path, "r") as mat:
        if "SUNRGBD2Dseg" not in mat or "seglabel" not in mat["SUNRGBD2Dseg"]:
            raise DatasetLayoutError(f"{seg_path} has no SUNRGBD2Dseg.seglabel\n{LAYOUT}")
        references = mat["SUNRGBD2Dseg"]["seglabel"][()].ravel()
        if len(references) != len(rgb_paths):
            raise DatasetLayoutError(
                f"{seg_path} has {len(references)} labels but {raw / META_MAT} lists {len(rgb_paths)} images"
            )
        for split, paths in splits.items():
            for number, rel in enumerate(tqdm(paths, desc=f"sunrgbd {split}", unit="img"), start=1):
                if rel not in index_of:
                    raise DatasetLayoutError(f"{raw / SPLIT_LISTS[split]}: {rel} is not in {raw / META_MAT}")
                image_out = out / "images" / f"{sample_id(split, number)}.jpg"
                label_out = out / "labels" / f"{sample_id(split, number)}.png"
                if image_out.exists() and label_out.exists():
                    continue
                image_in = require_path(raw / rel, INFO, "image")
                label = read_seglabel(mat, references, index_of[rel])
                write_converted_pair(image_in, label, image_out, label_out, INFO, what="seglabel")
    for split, paths in splits.items():
        write_id_list(out / f"{split}.txt", [sample_id(split, n) for n in range(1, len(paths) + 1)])


# --- stand-in


def _standin_image_path(number: int) -> str:
    """Paths shaped like the real ones, from two of the sensors' folders."""
    if number % 2:
        return f"SUNRGBD/kv2/kinect2data/{number:06d}_standin_rgbf{number:06d}-resize/image/{number:07d}.jpg"
    return f"SUNRGBD/kv1/NYUdata/NYU{number:04d}/image/NYU{number:04d}.jpg"


def write_standin(out: Path, *, train: int, val: int, size: tuple[int, int], seed: int) -> None:
    """A miniature release in the RAW layout (see LAYOUT): `train` + `val` images, `size` = (H, W).

    Scenes come from `standin.paint_scene` with 37 classes, written as ids 1..37, with one patch per
    image set to 0 (unlabelled). SUNRGBDMeta lists the images in a shuffled order, so `prepare` must
    match list entries to metadata by path, as with the real files. `val` images form the test split.
    """
    import h5py
    from scipy.io import savemat

    if train < 1 or val < 1:
        raise ValueError("sunrgbd stand-in needs at least one train and one test image")
    out = Path(out)
    height, width = size
    rng = np.random.default_rng(seed)
    total = train + val
    paths = [_standin_image_path(n) for n in range(1, total + 1)]
    labels = []
    for rel in paths:
        image, label = paint_scene(rng, height, width, len(CLASS_NAMES), background=None)
        label = label + 1
        y0, x0 = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
        label[y0 : y0 + max(2, height // 6), x0 : x0 + max(2, width // 6)] = 0
        save_jpeg(out / rel, image)
        labels.append(label)

    meta_order = rng.permutation(total)
    meta = np.empty((1, total), dtype=[("sequenceName", object), ("rgbpath", object), ("rgbname", object)])
    for slot, n in enumerate(meta_order):
        rel = PurePosixPath(paths[n])
        meta[0, slot] = (f"/n/fs/sun3d/data/{rel.parent.parent}", f"/n/fs/sun3d/data/{rel}", rel.name)
    (out / META_MAT).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / META_MAT) as tmp:
        savemat(tmp, appendmat=False, mdict={"SUNRGBDMeta": meta})
    with atomic_path(out / SEG_MAT) as tmp:
        with h5py.File(tmp, "w", userblock_size=512) as mat:
            refs_group = mat.create_group("#refs#")
            seg = mat.create_group("SUNRGBD2Dseg")
            seg.attrs["MATLAB_class"] = np.bytes_("struct")
            references = np.empty((total, 1), dtype=h5py.ref_dtype)
            for slot, n in enumerate(meta_order):
                dset = refs_group.create_dataset(f"seglabel{slot}", data=labels[n].T.astype(np.uint16))
                dset.attrs["MATLAB_class"] = np.bytes_("uint16")
                references[slot, 0] = dset.ref
            seg.create_dataset("seglabel", data=references)
        write_matlab73_header(tmp)
    # Like the real lists, many lines have a doubled slash before image/.
    listed = [p.replace("-resize/image/", "-resize//image/") for p in paths]
    order = rng.permutation(total)
    write_id_list(out / SPLIT_LISTS["train"], [listed[n] for n in order[:train]])
    write_id_list(out / SPLIT_LISTS["test"], [listed[n] for n in order[train:]])
    write_standin_marker(out, INFO.name, seed)
