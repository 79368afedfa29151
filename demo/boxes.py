"""The detector's part of the demo: its boxes with and without the mark, which
boxes the mark drove, and how well their own maps' ``inside`` finds those.

A box of a marked test image is *driven by the mark* when the detector,
run on the image's clean copy, puts another class (or no box) there: see
:func:`mark_drove_box`. The run's explained boxes sorted by ``inside``
(lowest first) are saved as :data:`BOXES_VIEW`.
"""
import numpy as np
import torch

from .dataset import set_scene_values
from .train import to_boxes, to_tensors

BOXES_VIEW = "boxes-found-by-context"


def _detections(output, size, classes, drove=None):
    """A detector output (one image's) as ``fo.Detections``; ``drove``: a bool per box, stored as ``mark_drove``."""
    import fiftyone as fo

    dets = []
    for i, (box, label, score) in enumerate(zip(output["boxes"].tolist(), output["labels"].tolist(), output["scores"].tolist())):
        x1, y1, x2, y2 = (v / size for v in box)
        d = fo.Detection(label=classes[int(label)], bounding_box=[x1, y1, x2 - x1, y2 - y1], confidence=float(score))
        if drove is not None:
            d["mark_drove"] = bool(drove[i])
        dets.append(d)
    return fo.Detections(detections=dets)


def _above(output, threshold):
    keep = output["scores"] >= threshold
    return {k: v[keep] for k, v in output.items()}


def mark_drove_box(box, label, clean_output, iou=0.5):
    """Whether the mark drove a box of a marked image: on the image's clean
    copy, the best-scored box overlapping it (IoU > ``iou``) has another
    label, or no box overlaps it there.

    Args:
        box: (x1, y1, x2, y2) pixels
        label: the box's class index
        clean_output: the detector's output on the clean copy (all its boxes)
    """
    from torchvision.ops import box_iou

    if len(clean_output["boxes"]) == 0:
        return True
    overlap = box_iou(torch.tensor([box], dtype=torch.float32), clean_output["boxes"].float())[0] > iou
    if not overlap.any():
        return True
    scores = torch.where(overlap, clean_output["scores"].float(), torch.tensor(-1.0))
    return int(clean_output["labels"][int(scores.argmax())]) != int(label)


def predict_boxes(test_view, test, model, sc, threshold):
    """Runs the detector on the test images with and without their mark;
    writes ``det_prediction`` (boxes of score >= ``threshold``, each with
    ``mark_drove``), ``det_prediction_without_mark`` (marked samples) and
    ``det_mark_drove`` (a box of the sample was driven by the mark).

    Returns:
        ``(quality, clean)``: the detection quality (see :func:`detector_numbers`)
        and per test scene the detector's output on its clean copy (None when unmarked)
    """
    from torchvision.ops import box_iou

    x = to_tensors(test, model.transforms)
    x_clean = to_tensors(test, model.transforms, clean=True)
    marked = [s.mark_box is not None for s in test]
    with torch.no_grad():
        outs = [o for i in range(0, len(x), 64) for o in model.module(x[i:i + 64])]
        cleans = [o for i in range(0, len(x), 64) for o in model.module(x_clean[i:i + 64])]
    truth = to_boxes(test, sc.size)
    shortcut = model.classes.index(sc.shortcut_class)
    hit, right, follows, kept, driven, values = [], [], [], [], [], {"det_prediction": [], "det_prediction_without_mark": [],
                                                                    "det_mark_drove": []}
    for s, o, c, t, m in zip(test, outs, cleans, truth, marked):
        top = _above(o, threshold)
        drove = [m and mark_drove_box(b, l, c) for b, l in zip(top["boxes"].tolist(), top["labels"].tolist())]
        best = int(o["scores"].argmax()) if len(o["scores"]) else None  # the image's best box
        ok = best is not None and float(box_iou(o["boxes"][best:best + 1], t[None])[0, 0]) > 0.5
        label = None if best is None else int(o["labels"][best])
        hit.append(ok)
        if not m:
            right.append(ok and label == model.classes.index(s.label))
        elif s.label != sc.shortcut_class:
            follows.append(label == shortcut)
        kept.append(len(top["boxes"]))
        driven += drove
        values["det_prediction"].append(_detections(top, sc.size, model.classes, drove))
        values["det_prediction_without_mark"].append(_detections(_above(c, threshold), sc.size, model.classes) if m else None)
        values["det_mark_drove"].append(any(drove))
    set_scene_values(test_view, test, values)
    quality = {
        "iou50": float(np.mean(hit)),
        "clean": float(np.mean(right)) if right else None,
        "follows": float(np.mean(follows)) if follows else None,
        "boxes_per_image": float(np.mean(kept)),
        "predicted_boxes": len(driven),
        "predicted_drove": int(sum(driven)),
    }
    return quality, [c if m else None for c, m in zip(cleans, marked)]


def detector_numbers(test_view, clean, quality, classes, fields, config):
    """Marks each of the run's explained boxes with ``mark_drove``, saves the
    boxes found by their context (lowest ``inside`` of the main map first)
    as :data:`BOXES_VIEW`, and measures that ranking for every map of the run.

    Returns:
        a dict: the detection quality from :func:`predict_boxes` (``iou50``:
        share of test scenes whose best box overlaps the digit's by IoU > 0.5;
        ``clean``: share of unmarked ones where that box also has the digit's
        class; ``follows``: share of marked scenes of other classes whose best
        box says the shortcut class; ``boxes_per_image``), ``top_n``, and
        ``rows``: per map of the run (the main one, :data:`BOXES_VIEW`'s,
        first) ``field``, ``boxes`` (explained boxes with an ``inside`` score
        and a confidence >= the threshold), ``drove`` (those the mark drove),
        ``base_rate`` (drove / boxes), ``p_drove`` / ``p_mark`` (precision of
        the ``top_n`` lowest ``inside`` against driven boxes / boxes on marked
        images), ``ap_drove`` (average precision of the whole ranking),
        ``median_drove`` / ``median_other`` (median ``inside`` of each group)
    """
    import cam_core

    from . import shortcut

    size = config.scenes.size
    drove = []
    for out, d in zip(clean, test_view.values("det_detections")):
        if d is None:
            drove.append(None)
            continue
        drove.append([bool(out is not None and mark_drove_box(
            [o.bounding_box[0] * size, o.bounding_box[1] * size, (o.bounding_box[0] + o.bounding_box[2]) * size,
             (o.bounding_box[1] + o.bounding_box[3]) * size], classes.index(o.label), out)) for o in d.detections])
    test_view.set_values("det_detections.detections.mark_drove", drove)
    test_view._root_dataset.add_dynamic_sample_fields()  # mark_drove becomes a label filter in the App

    marked_ids = set(test_view.match({"has_mark": True}).values("id"))
    n, rows = config.top_n, []
    for i, field in enumerate(sorted(fields, key=lambda f: f != config.det_field)):
        patches = cam_core.sort_objects_by_score(test_view, "det", "inside", field=field,
                                                 min_confidence=config.det_score_threshold,
                                                 view_name=BOXES_VIEW if i == 0 else None)
        _, attribute = cam_core.checks.check_objects_args(test_view, "det", "inside", field=field)
        relevant = [bool(v) for v in patches.values("det_detections.mark_drove")]
        on_marked = [sid in marked_ids for sid in patches.values("sample_id")]
        scores = patches.values(f"det_detections.{attribute}")
        rows.append(dict(
            field=field, boxes=len(relevant), drove=sum(relevant), marked=sum(on_marked),
            base_rate=sum(relevant) / len(relevant) if relevant else None,
            p_drove=float(np.mean(relevant[:n])) if relevant else None,
            p_mark=float(np.mean(on_marked[:n])) if relevant else None,
            ap_drove=shortcut.average_precision(scores, relevant),
            median_drove=float(np.median([v for v, r in zip(scores, relevant) if r])) if any(relevant) else None,
            median_other=float(np.median([v for v, r in zip(scores, relevant) if not r])) if not all(relevant) else None,
        ))
    return dict(quality, top_n=n, rows=rows)
