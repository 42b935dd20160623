"""RefineNet (Lin et al., CVPR 2017): multi-path refinement networks for semantic segmentation."""

__version__ = "0.1.0"

from refinenet.metrics import ConfusionMatrix
from refinenet.model import (
    ChainedResidualPooling,
    MultiResolutionFusion,
    RefineNet,
    RefineNetBlock,
    RefineNetConfig,
    ResidualConvUnit,
    build_refinenet,
    load_backbone_weights,
    refinenet50,
    refinenet101,
    refinenet152,
)
from refinenet.released import load_released, to_released_state_dict

__all__ = [
    "ChainedResidualPooling",
    "ConfusionMatrix",
    "MultiResolutionFusion",
    "RefineNet",
    "RefineNetBlock",
    "RefineNetConfig",
    "ResidualConvUnit",
    "build_refinenet",
    "load_backbone_weights",
    "load_released",
    "refinenet50",
    "refinenet101",
    "refinenet152",
    "to_released_state_dict",
]
