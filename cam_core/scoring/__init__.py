"""Scores computed from each map: plain numpy (ROAD, in :mod:`.road`, runs
the model through torch). Nothing here imports FiftyOne.

- :mod:`.names`: every score's name, once;
- :mod:`.maps`: shape scores, region scores, agreement of two maps;
- :mod:`.rasterize`: boxes, polylines and masks as boolean regions;
- :mod:`.regions`: the region of a FiftyOne label a map is scored against;
- :mod:`.road`: grad-cam's ROAD faithfulness score for a batch.
"""
from .batched import agreement_batch, shape_scores_batch
from .maps import agreement, region_scores, shape_scores
from .names import HISTOGRAM_SCORES, REGION_SCORES, SCORES, SHAPE_SCORES
from .rasterize import region_mask_from_boxes, region_mask_from_polylines, region_mask_from_segmentation
from .regions import GT_TYPES, region_mask

__all__ = [
    "agreement",
    "agreement_batch",
    "shape_scores_batch",
    "region_scores",
    "shape_scores",
    "HISTOGRAM_SCORES",
    "REGION_SCORES",
    "SCORES",
    "SHAPE_SCORES",
    "region_mask_from_boxes",
    "region_mask_from_polylines",
    "region_mask_from_segmentation",
    "GT_TYPES",
    "region_mask",
]
