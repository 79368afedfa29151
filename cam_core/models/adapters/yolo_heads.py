"""Ultralytics YOLO task models seen through the engine's contracts.

A YOLO task model (``ultralytics.nn.tasks.DetectionModel`` and its
subclasses, ``ClassificationModel``) is wrapped, never changed: the wrapper
holds it as its submodule ``model`` (so its layers are named as in the
``YOLO`` object: ``model.model.15``) and only calls its ``forward``. It never
calls ``predict``, ``train`` or ``fuse``; the mode, gradients and hooks are
the engine's guard's business (:func:`cam_core.engine.state.preserved_state`),
and the anchors the detection head caches during a forward are put back as
they were, so the model is left exactly as found.

``ultralytics`` itself is imported only inside a detector's forward (its own
non-maximum suppression and mask decoding), which only runs on its models.
"""
import torch
from torch import nn

from ...errors import CamArgumentError

# the detection heads whose eval output is (decoded predictions, raw outputs)
DETECTION_HEADS = ("Detect", "Segment", "Segment26", "Pose", "Pose26", "OBB", "OBB26", "v10Detect")
# what a detection head caches on itself in a forward (its anchors for that input size)
_HEAD_CACHE = ("anchors", "strides", "shape")


def forward_as_found(model, x):
    """``model(x)``, with what the head caches during the forward put back as it was."""
    head = model.model[-1]
    saved = {k: head.__dict__[k] for k in _HEAD_CACHE if k in head.__dict__}
    try:
        return model(x)
    finally:
        for k in _HEAD_CACHE:
            if k in saved:
                head.__dict__[k] = saved[k]
            else:
                head.__dict__.pop(k, None)


class YoloDetector(nn.Module):
    """A YOLO detection, segmentation, pose or OBB model as a detector of the
    engine's contract (:mod:`cam_core.engine.detection`).

    Its forward (in eval mode) returns one mapping per image: ``boxes``
    (x1, y1, x2, y2 in input pixels; a pose model's person boxes, an OBB
    model's rotated boxes as the axis-aligned boxes around them),
    ``labels``, ``scores`` and, for a segmentation model, ``masks`` ((N, H,
    W) booleans over the input). The boxes are the ones the model's own
    predictor keeps: ultralytics' ``non_max_suppression`` on the detached
    predictions with the model's ``iou``, ``max_det`` and ``agnostic_nms``,
    and no confidence floor (the engine's ``score_threshold`` plays the
    predictor's ``conf``: the boxes kept above it are the predictor's at
    that ``conf``). Each box's score is its class score at the anchor that
    produced it, gathered from the model's differentiable output; its box is
    detached, so a target's gradient is that class score's alone.

    Args:
        model: the task model (``DetectionModel`` or a subclass with one of
            :data:`DETECTION_HEADS`)
        iou (0.7), max_det (300), agnostic (False): the predictor's NMS settings
    """

    def __init__(self, model, iou=0.7, max_det=300, agnostic=False):
        super().__init__()
        self.model = model
        self.iou, self.max_det, self.agnostic = float(iou), int(max_det), bool(agnostic)

    def forward(self, x):
        out = forward_as_found(self.model, x)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise CamArgumentError(
                "model", f"the YOLO model returned a {type(out).__name__}, not its eval output (predictions, raw "
                         f"outputs): explain it in eval mode, not in export mode")
        y, proto = out[0], None
        if isinstance(y, (tuple, list)):  # a segmentation head: (predictions, mask prototypes)
            y, proto = y
        return [self._image(y[b:b + 1], None if proto is None else proto[b], tuple(x.shape[-2:]))
                for b in range(len(y))]

    def _image(self, y, proto, hw):
        from ultralytics.utils.nms import non_max_suppression

        head = self.model.model[-1]
        end2end = bool(getattr(head, "end2end", False))
        rotated = type(head).__name__.startswith("OBB")
        # one image per call: the function's time limit then never drops another image's boxes
        rows, kept = non_max_suppression(y.detach(), 0.0, self.iou, None, self.agnostic, max_det=self.max_det,
                                         nc=head.nc, rotated=rotated, end2end=end2end, return_idxs=True)
        rows, kept = rows[0], kept[0].long()
        labels = rows[:, 5].long()
        if end2end:  # (1, k, 6 + extra): rows of boxes, score, class
            scores = y[0, kept, 4]
        else:  # (1, 4 + nc + extra, anchors): the class score at each kept anchor
            scores = y[0, 4 + labels, kept]
        boxes = axis_aligned(rows[:, :4], rows[:, -1]) if rotated else rows[:, :4]
        out = {"boxes": boxes, "labels": labels, "scores": scores}
        if proto is not None:
            from ultralytics.utils.ops import process_mask

            masks = process_mask(proto.detach(), rows[:, 6:], boxes, hw, upsample=True).bool()
            keep = masks.flatten(1).any(dim=1)  # the predictor keeps only the boxes with a mask
            out = {k: v[keep] for k, v in out.items()}
            out["masks"] = masks[keep]
        return out


def axis_aligned(xywh, angle):
    """(x1, y1, x2, y2) around rotated boxes (centre x, y, width, height; angle in radians)."""
    cos, sin = angle.cos().abs(), angle.sin().abs()
    half_w = (xywh[:, 2] * cos + xywh[:, 3] * sin) / 2
    half_h = (xywh[:, 2] * sin + xywh[:, 3] * cos) / 2
    return torch.stack([xywh[:, 0] - half_w, xywh[:, 1] - half_h, xywh[:, 0] + half_w, xywh[:, 1] + half_h], 1)


class YoloClassifier(nn.Module):
    """A YOLO classification model returning its class logits (B, classes).

    In eval mode its ``Classify`` head returns ``(probabilities, logits)``:
    the logits (before its softmax) are explained, as grad-cam explains a
    classifier's scores. A head that returns the probabilities alone (older
    ultralytics) has them explained.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        return out[1] if isinstance(out, (tuple, list)) else out
