"""RefineNet (Lin et al., CVPR 2017): multi-path refinement networks for semantic segmentation."""

__version__ = "0.1.0"
