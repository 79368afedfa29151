"""The ground-truth region a map is scored against, from FiftyOne labels.

``fo.Detections`` (boxes) and ``fo.Polylines`` give the objects of the map's
target class by default, or every object; an ``fo.Segmentation`` gives the
pixels of the target class (or every non-zero pixel).

Labels are read by duck typing (their class name and attributes): nothing
here imports FiftyOne.
"""
import numpy as np

from . import rasterize

# the label types a map can be scored against, by FiftyOne class name
GT_TYPES = ("Detections", "Polylines", "Segmentation")


def region_mask(label, shape, target_label=None, target_index=None, all_objects=False, mask_targets=None):
    """A boolean (H, W) mask of the ground truth a map of ``shape`` is scored against.

    Args:
        label: an ``fo.Detections``, ``fo.Polylines`` or ``fo.Segmentation`` (or None)
        shape: (H, W) of the map (it covers the whole image)
        target_label / target_index: the class the map explains
        all_objects (False): every object instead of those of the target class
        mask_targets (None): ``{value: class name}`` of a Segmentation field

    Returns:
        a bool array, or None when there is no such object
    """
    if label is None:
        return None
    kind = type(label).__name__
    if kind == "Segmentation":
        mask = label.get_mask()
        if mask is None:
            return None
        if mask.ndim == 3:
            mask = mask[..., 0]
        if all_objects:
            values = [v for v in np.unique(mask) if v != 0]
        elif mask_targets:
            values = [int(v) for v, name in mask_targets.items() if str(name) == str(target_label)]
        else:
            values = [target_index]
        region = rasterize.region_mask_from_segmentation(mask, shape, values) if values else None
    else:
        objects = label.detections if kind == "Detections" else label.polylines
        if not all_objects:
            objects = [o for o in objects if o.label is not None and str(o.label) == str(target_label)]
        if not objects:
            return None
        if kind == "Detections":
            region = rasterize.region_mask_from_boxes([o.bounding_box for o in objects], shape)
        else:
            region = rasterize.region_mask_from_polylines([o.points for o in objects], shape, filled=True)
    if region is None or not region.any():
        return None
    return region
