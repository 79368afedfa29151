"""A detector's run: its checks, the objects each image's maps explain, and
each object's own scores, stored on the run's own ``fo.Detections`` field.

Why a field of its own: the explained objects are the detector's predictions
(no field holds them yet) or copies of ground-truth objects, and their
scores are the run's; writing them into a user's label field would change
labels the run does not own (``delete_run`` removes the field, nothing else).
Each copy of a ground-truth object records the ``gt_id`` of the original.
An object a detector gave an instance mask keeps it (``mask``, over its box)
and is scored against it too.
"""
import math
import numbers
from types import SimpleNamespace

import fiftyone as fo
import numpy as np
import torch

from ..engine.detection import predicted_objects, truth_objects
from ..engine.detector import check_detector_methods
from ..engine.targets import TargetSpec, class_index, class_name
from ..errors import CamArgumentError
from ..labels import label_fields
from ..scoring.boxes import object_scores
from ..scoring.names import DETECTION_SCORES, MASK_SCORES, TYPES, object_attribute
from ..skips import no_object, not_finite

# a ground-truth object is matched to the output box of highest IoU above this (grad-cam's default)
MATCH_IOU = 0.5


def settle(a, samples, description, methods, run_key, schema, owned):
    """Checks what only a detector run needs; the Plan's detector settings.

    Raises:
        CamArgumentError: naming the argument a detector cannot take
    """
    check_detector_methods(methods, a["aug_smooth"])
    for name, why in (("faithfulness", "ROAD measures a class score's change; a detector's boxes have no such score"),
                      ("target_class", "target_class picks a segmentation mask's class")):
        if a[name] not in (None, False):
            raise CamArgumentError(name, f"{name} does not apply to detectors: {why}")
    if not a["all_objects"]:
        raise CamArgumentError(
            "all_objects", "a detector's sample map explains all its objects together, so its region scores count "
                           "every object (all_objects=True); each object's own scores are on the detections field")
    threshold = a["score_threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise CamArgumentError("score_threshold", f"score_threshold must be a number (a detector's score); got {threshold!r}")
    count = a["max_objects"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise CamArgumentError("max_objects", f"max_objects must be an integer >= 1; got {count!r}")
    field = f"{run_key}_detections"
    if field in schema and field not in owned:
        raise CamArgumentError("run_key", f"field '{field}' already exists and does not belong to run '{run_key}'")
    target = parse_target(a["target"], samples, description.model.classes, description.num_outputs)
    return dict(detector=True, detections_field=field, score_threshold=float(threshold), max_objects=count,
                target=target, object_masks=description.object_masks)


def parse_target(target, samples, classes, num_outputs):
    """A detector's ``target``: ``"prediction"`` (its boxes above the score
    threshold), ``"field:<Detections field>"`` (those objects, matched to its
    boxes) or a class (its boxes of that class above the threshold)."""
    if target is None or target == "prediction":
        return TargetSpec("prediction")
    if isinstance(target, str) and target.startswith("field:"):
        name = target[len("field:"):]
        allowed = label_fields(samples, "Detections")
        if name not in allowed:
            raise CamArgumentError(
                "target", f"target field '{name}' is not a Detections field; a detector explains the objects of one: "
                          f"{', '.join(allowed) or 'none'}")
        if classes is None:
            raise CamArgumentError(
                "target", f"target '{target}' matches objects to the detector's labels by name, but the model has "
                          f"no class names; pass classes=[...]")
        return TargetSpec("field", field=name)
    if isinstance(target, str) and target.startswith("class:"):
        target = target[len("class:"):]
    if num_outputs is None and isinstance(target, int) and not isinstance(target, bool) and target >= 0:
        return TargetSpec("class", class_index=target)  # a head whose size cannot be read takes any index
    return TargetSpec("class", class_index=class_index(classes, target, num_outputs or 0))


def input_box(frame, box):
    """A FiftyOne ``[x, y, w, h]`` relative box as (x1, y1, x2, y2) model-input pixels."""
    x, y, w, h = box
    xs = [(v * frame.width - frame.offset[0]) / frame.scale[0] for v in (x, x + w)]
    ys = [(v * frame.height - frame.offset[1]) / frame.scale[1] for v in (y, y + h)]
    return (xs[0], ys[0], xs[1], ys[1])


def image_box(frame, box):
    """(x1, y1, x2, y2) model-input pixels as a FiftyOne ``[x, y, w, h]``
    relative box, clipped to the image."""
    x1, y1, x2, y2 = box
    xs = [min(max((frame.offset[0] + v * frame.scale[0]) / frame.width, 0.0), 1.0) for v in (x1, x2)]
    ys = [min(max((frame.offset[1] + v * frame.scale[1]) / frame.height, 0.0), 1.0) for v in (y1, y2)]
    return [xs[0], ys[0], xs[1] - xs[0], ys[1] - ys[0]]


def chooser(plan, group, sample_ids):
    """``f(outputs) -> per image its DetectedObject list`` for one group."""
    spec = plan.target
    if spec.kind == "field":
        truth = plan.dataset.select(sample_ids, ordered=True).values(spec.field)
        names = {str(c): i for i, c in enumerate(plan.classes)}
        per_image = []
        for it, dets in zip(group, truth):
            objs = list(dets.detections) if dets is not None else []
            per_image.append(([input_box(it.frame, d.bounding_box) for d in objs],
                              [names.get(str(d.label)) for d in objs], [d.id for d in objs], image_region(it.frame)))

        def choose(outputs):
            choose.not_finite = [_not_finite(o) for o in outputs]
            # stored boxes are clipped to the image: so are the output boxes they are matched to
            return [truth_objects(o, boxes, labels, MATCH_IOU, region)[: plan.max_objects]
                    for o, (boxes, labels, _, region) in zip(outputs, per_image)]

        choose.truth_ids = [ids for _, _, ids, _ in per_image]
        return choose
    label = spec.class_index if spec.kind == "class" else None

    def choose(outputs):
        choose.not_finite = [_not_finite(o) for o in outputs]
        return [predicted_objects(o, plan.score_threshold, plan.max_objects, label, MATCH_IOU) for o in outputs]

    return choose


def _not_finite(output):
    """Whether one image's detector output holds NaN or infinity in its boxes or scores."""
    return not all(bool(torch.isfinite(output[k].float()).all()) for k in ("boxes", "scores"))


def untrue_rows(plan, placed, result, choose):
    """``{row: Skip}`` of a detector group's images whose maps are not true:
    the detector's output or the maps hold NaN or infinity, or no object is
    explained (no box passed the threshold, or no ground-truth object matched
    a box), where a map would be stored empty and tint the whole image.

    Args:
        placed: the group's :class:`cam_core.compute.placing.PlacedBatch`, its objects added
        result: its :class:`cam_core.engine.detector.DetectionResult`
        choose: its :func:`chooser`, called by the engine
    """
    bad = {}
    for r, objects in enumerate(placed.detections):
        if choose.not_finite[r]:
            bad[r] = not_finite("the detector's boxes or scores")
        elif not all(np.isfinite(p[r]) for p in result.peaks.values()):
            bad[r] = not_finite("the maps (the activations or gradients of the explained layers)")
        elif not any(o["score"] is not None for o in objects):
            bad[r] = no_object(_why_none(plan, len(objects)))
    return bad


def _why_none(plan, count):
    """Why an image's maps explain no object, in words."""
    spec = plan.target
    if spec.kind == "field":
        if not count:
            return f"its '{spec.field}' holds no object"
        return (f"none of its {count} object(s) in '{spec.field}' matched a box of the detector (same label, IoU "
                f"over {MATCH_IOU})")
    of = f" of class '{class_name(plan.classes, spec.class_index)}'" if spec.kind == "class" else ""
    return f"no box{of} scored at least the score threshold {plan.score_threshold}"


def as_batch_result(result):
    """A detection result seen as :func:`cam_core.compute.placing.place_batch`
    reads a batch result (a detector's sample map has no single class)."""
    none = [None] * len(result.objects)
    return SimpleNamespace(maps=result.maps, peaks=result.peaks, indices=none, scores=none, confidences=none)


def add_objects(plan, placed, group, result, truth_ids=None):
    """Adds to a placed detector batch each explained object: its box in the
    image, and its scores from its own map.

    Args:
        placed: the group's :class:`cam_core.compute.placing.PlacedBatch`
        group: its items (their frames)
        result: the group's :class:`cam_core.engine.detector.DetectionResult`
        truth_ids: per sample the ids of its target field's objects, or None
    """
    keys = {f: tuple(k) for f, k in plan.fields.items()}
    placed.detections = []
    for r, it in enumerate(group):
        found = result.objects[r]
        boxes = [o.box for o in found]
        masks = [o.mask for o in found] if plan.object_masks else None
        scores = {f: object_scores(result.object_maps[k][r], boxes, masks) for f, k in keys.items()}
        placed.detections.append([
            {"box": image_box(it.frame, o.box), "label": o.label, "score": o.score,
             "gt_id": None if o.truth is None or truth_ids is None else truth_ids[r][o.truth],
             "scores": {f: scores[f][i] for f in keys}, "mask": box_mask(it.frame, o.box, o.mask)}
            for i, o in enumerate(found)])


def image_region(frame):
    """The image's (x1, y1, x2, y2) in model-input pixels (beyond the input where a crop cut it)."""
    x1, y1 = (-frame.offset[a] / frame.scale[a] for a in (0, 1))
    return (x1, y1, x1 + frame.width / frame.scale[0], y1 + frame.height / frame.scale[1])


def box_mask(frame, box, mask):
    """An object's (H, W) input-pixel mask cut to its box clipped to the image
    (as :func:`image_box` clips the box): a FiftyOne ``Detection.mask``, or None."""
    if mask is None:
        return None
    region = image_region(frame)
    lo, hi = region[:2], region[2:]
    x1, y1 = (max(0, math.floor(max(box[a], lo[a]))) for a in (0, 1))
    x2, y2 = (math.ceil(min(box[a + 2], hi[a])) for a in (0, 1))
    crop = mask[y1:y2, x1:x2]
    return crop.cpu().numpy() if crop.numel() else None


def detections_label(plan, objects):
    """The run's ``fo.Detections`` of one sample's explained objects."""
    dets = []
    for o in objects:
        attrs = {object_attribute(plan.run_key, f, s): v for f, values in o["scores"].items() for s, v in values.items()}
        if o["gt_id"] is not None:
            attrs["gt_id"] = o["gt_id"]
        if o.get("mask") is not None:
            attrs["mask"] = o["mask"]
        dets.append(fo.Detection(label=class_name(plan.classes, o["label"]) if o["label"] >= 0 else None,
                                 bounding_box=o["box"], confidence=o["score"], **attrs))
    return fo.Detections(detections=dets)


def attribute_types(plan):
    """``{attribute: type}`` of the explained objects' attributes, for the schema."""
    scores = DETECTION_SCORES + (MASK_SCORES if plan.object_masks else ())
    types = {object_attribute(plan.run_key, f, s): TYPES.get(s, float) for f in plan.fields for s in scores}
    if plan.target.kind == "field":
        types["gt_id"] = str
    return types
