"""Every table of the paper as a small declarative spec: its rows and what each row runs.

A row names the model it needs (dataset, backbone, cascade variant, pooling blocks) and how it is
evaluated (multi-scale, CRF, split, metrics). Rows that differ only in evaluation share one trained
model (`Row.model_key`). `paper` selects the row's reported number(s) in `benchmarks/tables/paper/`.
`authors_model` names the authors' own MatConvNet model of the row (`refinenet_res{101,152}_<dataset>.mat`,
guosheng/refinenet README, "Trained models") and `released` its PyTorch conversion, where one was published
(`refinenet{50,101,152}_{voc,nyu}.pth.tar`); `--profile released` evaluates the first of the two found in
`--weights` (None for both: no released weights cover the row). Where that model's configuration differs
from the row's, the results say so (benchmarks/tables/released.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The split each dataset's table reports on, and the split we can measure on. VOC (Table 4) and
# Cityscapes (Table 5) report test-server numbers: we measure on val and write the submission files.
MEASURED_SPLIT = {
    "voc2012": "val",
    "cityscapes": "val",
    "pascal_context": "val",
    "nyudv2": "test",
    "sunrgbd": "test",
    "ade20k": "validation",
    "person_part": "test",
}
TRAIN_SPLIT = {"voc2012": "train_aug", "coco": "train"}  # paper Sec. 4.2: VOC train + SBD, after a COCO stage
# paper Sec. 4.2: the VOC models were first trained on MS COCO (read as VOC's classes); the first stage's dataset
# per dataset. Its model is a distinct store entry whose weights start the second stage (recipe field `coco`).
PRETRAIN = {"voc2012": "coco"}
TEST_SERVER = {
    "voc2012": ("test", "voc-test-server"),
    "cityscapes": ("test", "cityscapes-test-server"),
}


@dataclass(frozen=True)
class Row:
    label: str  # as the paper's table names the row
    dataset: str
    backbone: str
    variant: str = "4-cascaded"
    pooling_blocks: int | None = None  # None: the dataset's default (4 for VOC / Person-Part, else 2)
    msc: bool = True  # paper Sec. 4: multi-scale evaluation "if not further specified"
    crf: bool = False
    metrics: tuple[str, ...] = ("miou",)
    per_class: bool = False  # also report per-class IoU (Table 4)
    paper: dict = field(default_factory=dict)  # column -> value selecting the paper's row(s)
    released: str | None = None  # the released checkpoint (refinenet{50,101,152}_{voc,nyu}.pth.tar) of this model
    authors_model: str | None = None  # the authors' MatConvNet model (refinenet_res{101,152}_<dataset>.mat)

    @property
    def weights(self) -> tuple[str, ...]:
        """The released files that serve this row, the authors' own first."""
        return tuple(name for name in (self.authors_model, self.released) if name)

    @property
    def split(self) -> str:
        return MEASURED_SPLIT[self.dataset]

    @property
    def model_key(self) -> str:
        pooling = "default" if self.pooling_blocks is None else str(self.pooling_blocks)
        return f"{self.dataset}-{self.backbone}-{self.variant}-pool{pooling}"

    @property
    def key(self) -> str:
        return f"{self.model_key}-{'msc' if self.msc else 'ss'}{'-crf' if self.crf else ''}"


PROTOCOL_DOC = "docs/protocol.md"  # the table of record: every setting, the authors' and ours


@dataclass(frozen=True)
class Table:
    number: int
    title: str
    rows: tuple[Row, ...]
    plot: str = "bars"  # "bars", "ablation" (Tables 2, 9) or "per_class" (Table 4)
    note: str = ""  # where the paper's numbers were measured, when not on the split we score
    # what the paper's models had that our recipe does not: shown in the markdown, the plot and the notebook
    remark: str = ""


def _ours(backbone: str) -> str:
    return f"RefineNet-Res{backbone.removeprefix('resnet')}"


# The authors' MatConvNet release: ResNet-101 and ResNet-152 models for all seven datasets, named as in
# guosheng/refinenet main/demo_predict_mscale_<dataset>.m.
AUTHORS_DATASET_NAMES = {"voc2012": "voc2012", "cityscapes": "cityscapes", "nyudv2": "nyud",
                         "person_part": "person_parts", "pascal_context": "pascalcontext", "sunrgbd": "sunrgbd",
                         "ade20k": "ade"}


def authors_model(dataset: str, backbone: str) -> str | None:
    """`refinenet_res<depth>_<dataset>.mat` when the authors released that model (ResNet-101 / 152 only)."""
    depth = backbone.removeprefix("resnet")
    return f"refinenet_res{depth}_{AUTHORS_DATASET_NAMES[dataset]}.mat" if depth in ("101", "152") else None


TABLE_2_CONFIGS = [
    # (backbone, chained pooling, msc eval) as in Table 2
    ("resnet50", False, False),
    ("resnet50", True, False),
    ("resnet50", True, True),
    ("resnet101", True, False),
    ("resnet101", True, True),
    ("resnet152", True, True),
]


def _table2_rows() -> tuple[Row, ...]:
    rows = []
    for dataset in ("nyudv2", "person_part"):
        for backbone, pooling, msc in TABLE_2_CONFIGS:
            depth = backbone.replace("resnet", "ResNet-")
            label = f"{depth}, pool {'yes' if pooling else 'no'}, msc {'yes' if msc else 'no'}"
            paper = {"backbone": backbone, "pooling": "yes" if pooling else "no", "msc_eval": "yes" if msc else "no"}
            # the released NYUDv2 checkpoints have chained pooling; none were released for Person-Part
            released = f"refinenet{backbone.removeprefix('resnet')}_nyu.pth.tar" if dataset == "nyudv2" and pooling \
                else None
            rows.append(Row(label, dataset, backbone, pooling_blocks=None if pooling else 0, msc=msc, paper=paper,
                            released=released, authors_model=authors_model(dataset, backbone) if pooling else None))
    return tuple(rows)


TABLE_9_VARIANTS = ("single", "2-cascaded", "4-cascaded", "4-cascaded-2-scale")

TABLES: dict[int, Table] = {
    1: Table(1, "Object parsing on Person-Part (mean IoU)",
             (Row("RefineNet-Res101", "person_part", "resnet101", paper={"method": "RefineNet-Res101"},
                  authors_model=authors_model("person_part", "resnet101")),)),
    2: Table(2, "Ablation on NYUDv2 and Person-Part: depth, chained residual pooling, multi-scale evaluation",
             _table2_rows(), plot="ablation"),
    3: Table(3, "NYUDv2, 40 classes (pixel acc., mean acc., IoU)",
             (Row("RefineNet-Res152", "nyudv2", "resnet152", metrics=("pixel_acc", "mean_acc", "miou"),
                  paper={"method": "RefineNet-Res152"}, released="refinenet152_nyu.pth.tar",
                  authors_model=authors_model("nyudv2", "resnet152")),)),
    4: Table(4, "PASCAL VOC 2012 test (per-class IoU), with dense CRF",
             (
                 Row("RefineNet-Res101", "voc2012", "resnet101", crf=True, per_class=True,
                     paper={"method": "RefineNet-Res101"}, released="refinenet101_voc.pth.tar",
                     authors_model=authors_model("voc2012", "resnet101")),
                 Row("RefineNet-Res152", "voc2012", "resnet152", crf=True, per_class=True,
                     paper={"method": "RefineNet-Res152"}, released="refinenet152_voc.pth.tar",
                     authors_model=authors_model("voc2012", "resnet152")),
                 # Sec. 4.2: the CRF "yields a marginal improvement of 0.1% on the validation set"
                 Row("RefineNet-Res152 without CRF", "voc2012", "resnet152", crf=False, per_class=True,
                     released="refinenet152_voc.pth.tar", authors_model=authors_model("voc2012", "resnet152")),
             ), plot="per_class",
             note="Paper numbers are VOC test-server results; we measure on val and write the test-server files.",
             remark="The paper's VOC models were pre-trained on MS COCO (Sec. 4.2). Ours are too (a COCO stage, MS "
                    "COCO 2014 train read as VOC's 21 classes, whose weights start VOC train_aug; its schedule is "
                    "ours, the paper gives none) unless made with --no-coco: models whose key lacks -from-coco "
                    "learned VOC from ImageNet weights only, and the paper's numbers are not what they are expected "
                    "to reach."),
    5: Table(5, "Cityscapes test (mean IoU)",
             (Row("RefineNet-Res101", "cityscapes", "resnet101", paper={"method": "RefineNet-Res101"},
                  authors_model=authors_model("cityscapes", "resnet101")),),
             note="Paper number is a Cityscapes test-server result; we measure on val and write the submission files."),
    6: Table(6, "PASCAL-Context, 60 classes (mean IoU)",
             tuple(Row(_ours(b), "pascal_context", b, paper={"method": _ours(b)},
                       authors_model=authors_model("pascal_context", b)) for b in ("resnet101", "resnet152"))),
    7: Table(7, "SUN-RGBD, 37 classes (pixel acc., mean acc., IoU)",
             tuple(Row(_ours(b), "sunrgbd", b, metrics=("pixel_acc", "mean_acc", "miou"), paper={"method": _ours(b)},
                       authors_model=authors_model("sunrgbd", b)) for b in ("resnet101", "resnet152"))),
    8: Table(8, "ADE20K val, 150 classes (mean IoU)",
             tuple(Row(_ours(b), "ade20k", b, paper={"method": _ours(b)}, authors_model=authors_model("ade20k", b))
                   for b in ("resnet101", "resnet152"))),
    9: Table(9, "Cascade variants on NYUDv2 (ResNet-50, single-scale evaluation)",
             # the released ResNet-50 NYUDv2 checkpoint is the 4-cascaded model (Table 2's ResNet-50 row)
             tuple(Row(v, "nyudv2", "resnet50", variant=v, msc=False, paper={"variant": v},
                       released="refinenet50_nyu.pth.tar" if v == "4-cascaded" else None) for v in TABLE_9_VARIANTS),
             plot="ablation"),
}
