"""The label fields of a collection, and the checks of them that every public
function shares: each check raises :class:`cam_core.CamArgumentError` naming
the parameter, with the words the App's forms show too."""
import numbers

from .errors import CamArgumentError
from .scoring.regions import GT_TYPES


def label_fields(samples, *type_names):
    """The fields of ``samples`` holding labels of these types, by FiftyOne
    class name (``"Classification"``, ``"Detections"``, ...), in schema order."""
    schema = samples.get_field_schema()
    return [n for n, f in schema.items() if _type_name(f) in type_names]


def object_fields(samples):
    """The fields a map can be scored against: Detections, Polylines, Segmentation."""
    return label_fields(samples, *GT_TYPES)


def _type_name(field):
    return getattr(getattr(field, "document_type", None), "__name__", None)


def _held(field):
    return _type_name(field) or type(field).__name__


def check_gt_field(samples, name, param="gt_field"):
    """Refuses a field that does not hold Detections, Polylines or a Segmentation."""
    schema = samples.get_field_schema()
    listed = ", ".join(object_fields(samples)) or "none"
    if name not in schema:
        raise CamArgumentError(param, f"ground-truth field '{name}' does not exist; object fields: {listed}")
    if _type_name(schema[name]) not in GT_TYPES:
        raise CamArgumentError(
            param,
            f"ground-truth field '{name}' holds {_held(schema[name])}; it must hold Detections, Polylines or a "
            f"Segmentation: {listed}",
        )


def check_classification_field(samples, name, param):
    """Refuses a field that does not hold ``fo.Classification`` labels."""
    allowed = label_fields(samples, "Classification")
    if name not in allowed:
        raise CamArgumentError(param, f"'{name}' is not a Classification field; such fields: {', '.join(allowed) or 'none'}")


def check_iou_threshold(value):
    """Refuses an ``iou_threshold`` outside (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 1:
        raise CamArgumentError("iou_threshold", f"the IoU threshold must be a number in (0, 1]; got {value!r}")
    return float(value)


def mask_targets_of(dataset, field):
    """``{value: class name}`` of a Segmentation field: its own, else the dataset's default."""
    return dataset.mask_targets.get(field) or dataset.default_mask_targets or {}


def held_type(samples, name):
    """The label type name a field holds (``"Detections"``), or its field type."""
    return _held(samples.get_field_schema()[name])
