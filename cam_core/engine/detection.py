"""Detectors: what they return, which of their objects a map explains, and
where their layers lie over the image.

The contract (torchvision's detectors follow it, and any module can): in eval
mode, ``model(x)`` with ``x`` a (B, 3, H, W) float tensor returns a list of B
mappings, each with ``"boxes"`` (N, 4) as (x1, y1, x2, y2) in the pixels of
``x``, ``"labels"`` (N,) integers and ``"scores"`` (N,), the scores
differentiable with respect to the model's layers; optionally ``"masks"``,
each object's instance mask over ``x`` ((N, H, W) or (N, 1, H, W): booleans,
or probabilities read as inside above 0.5, as torchvision's Mask R-CNN gives
them), whose objects are then scored against their masks too
(:func:`cam_core.scoring.boxes.object_scores`). A detector that resizes
and pads its input inside (torchvision's ``model.transform``, a
``GeneralizedRCNNTransform``) is followed: its layers are grids over the
resized, padded image, and :class:`InputGeometry` maps them back.

Each explained object's target is grad-cam's ``FasterRCNNBoxScoreTarget`` for
its one box (the IoU plus the score of the matched output box; 0 without a
match), with one difference: the output box matched is the one of highest IoU
*among those of the object's label*. grad-cam takes the box of highest IoU
among all and gives 0 when its label differs; RetinaNet, FCOS and SSD output
the same box once per label, so grad-cam's target of every copy but the
best-scored one is 0 and its map empty. Where the box of highest IoU has the
object's label (always, for a box not output twice), both are equal. A
ground-truth object may be matched within the image's region of the input
(its stored box is clipped to the image, as a predictor clips the boxes it
stores): the output boxes are then clipped to that region before their IoU
is taken; boxes inside it, as torchvision's detectors give, are unchanged.
"""
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import CamArgumentError
from .fastmaps import _bilinear_matrix

DETECTION_KEYS = ("boxes", "labels", "scores")
# the optional entry of a detector's output mapping: per object its instance mask over the input
MASKS = "masks"


def is_detection_output(out):
    """Whether a model output is one mapping of boxes, labels and scores per image."""
    return (isinstance(out, (list, tuple)) and len(out) > 0
            and all(isinstance(o, Mapping) and all(k in o for k in DETECTION_KEYS) for o in out))


def check_detection_output(out, batch):
    """Refuses a detector output that breaks the contract (see the module's docstring).

    Raises:
        CamArgumentError: (``model``) saying what was returned
    """
    if not is_detection_output(out) or len(out) != batch:
        got = f"a {type(out).__name__} of {len(out)}" if isinstance(out, (list, tuple)) else type(out).__name__
        raise CamArgumentError(
            "model", f"a detector must return one mapping with 'boxes', 'labels' and 'scores' per image ({batch} "
                     f"for this batch); it returned {got}")
    for o in out:
        n = len(o["boxes"])
        if tuple(o["boxes"].shape) != (n, 4) or len(o["labels"]) != n or len(o["scores"]) != n:
            raise CamArgumentError(
                "model", f"a detector's 'boxes' must be (N, 4) with N 'labels' and N 'scores'; got boxes "
                         f"{tuple(o['boxes'].shape)}, {len(o['labels'])} labels, {len(o['scores'])} scores")
        masks = o.get(MASKS)
        if masks is not None and (not isinstance(masks, torch.Tensor) or len(masks) != n
                                  or masks.ndim not in (3, 4) or (masks.ndim == 4 and masks.shape[1] != 1)):
            got = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
            raise CamArgumentError(
                "model", f"a detector's 'masks' must be (N, H, W) or (N, 1, H, W) for its N boxes; got {got}")


def detached(output):
    """One image's output mapping, detached: its boxes, labels and scores, and
    its masks as (N, H, W) booleans when it has them."""
    out = {k: output[k].detach() for k in DETECTION_KEYS}
    masks = output.get(MASKS)
    if masks is not None:
        masks = masks.detach()
        masks = masks[:, 0] if masks.ndim == 4 else masks
        out[MASKS] = masks if masks.dtype == torch.bool else masks > 0.5
    return out


@dataclass
class DetectedObject:
    """One object a detector map explains.

    Attributes:
        box: (x1, y1, x2, y2) in the model input's pixels
        label: the class index
        score: the detector's score of the output box explained (for a
            ground-truth object: of the box matched to it), or None when no
            output box matches it
        truth: the index of the ground-truth object it is, or None for a prediction
        target: its :class:`LabelledBoxTarget` (this box alone)
        mask: its instance mask, a (H, W) bool tensor over the model input,
            or None (a detector without masks, a ground-truth object)
    """

    box: tuple
    label: int
    score: float = None
    truth: int = None
    target: object = None
    mask: object = None


def box_target(box, label, iou_threshold, region=None):
    """The target of one box: a :class:`LabelledBoxTarget`."""
    target = LabelledBoxTarget([int(label)], [np.asarray(box, dtype=np.float32)], iou_threshold)
    target.region = region
    return target


def _matched(boxes, labels, box, label, iou_threshold, region=None):
    """The output box a box is matched to: of highest IoU among those of its
    label (clipped to ``region``, (x1, y1, x2, y2), when given), if over
    ``iou_threshold``; ``(index, iou)`` or None."""
    from torchvision.ops import box_iou

    same = torch.nonzero(labels == label).flatten()
    if len(same) == 0:
        return None
    candidates = boxes[same]
    if region is not None:
        x1, y1, x2, y2 = region
        candidates = torch.stack([candidates[:, 0].clamp(x1, x2), candidates[:, 1].clamp(y1, y2),
                                  candidates[:, 2].clamp(x1, x2), candidates[:, 3].clamp(y1, y2)], 1)
    ious = box_iou(torch.as_tensor(box, dtype=boxes.dtype, device=boxes.device).reshape(1, 4), candidates)[0]
    j = int(ious.argmax())
    return (int(same[j]), ious[j]) if float(ious[j].detach()) > iou_threshold else None


def _target_base():
    from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget

    return FasterRCNNBoxScoreTarget


class LabelledBoxTarget(_target_base()):
    """grad-cam's ``FasterRCNNBoxScoreTarget``, each box matched among the
    output boxes of its own label (see the module's docstring): the sum over
    its boxes of IoU + score of the match, a (1,) tensor. Its ``region``
    (None, or the image's (x1, y1, x2, y2) in the input) clips the output
    boxes it matches against."""

    region = None

    def __call__(self, model_outputs):
        boxes = model_outputs["boxes"]
        output = torch.zeros(1, device=boxes.device, dtype=boxes.dtype)
        for box, label in zip(self.bounding_boxes, self.labels):
            match = _matched(boxes, model_outputs["labels"], box, label, self.iou_threshold, self.region)
            if match is not None:
                output = output + match[1] + model_outputs["scores"][match[0]]
        return output


def predicted_objects(output, threshold, max_objects, label=None, iou_threshold=0.5):
    """The detections of one image a map explains: score at least
    ``threshold`` (and of class ``label`` when given), the ``max_objects``
    best, best first; boxes of no area are left out.

    Args:
        output: one image's detached output mapping (:func:`detached`)
    """
    scores = output["scores"].float()
    boxes = output["boxes"].float()
    # a box of no area overlaps nothing (its IoU with itself is 0/0): no target can find it
    keep = (scores >= threshold) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if label is not None:
        keep &= output["labels"] == label
    order = [int(i) for i in torch.argsort(scores, descending=True) if keep[i]][:max_objects]
    boxes, labels = output["boxes"].tolist(), output["labels"].tolist()
    masks = output.get(MASKS)
    return [DetectedObject(tuple(boxes[i]), int(labels[i]), float(scores[i]), None,
                           box_target(boxes[i], labels[i], iou_threshold), None if masks is None else masks[i])
            for i in order]


def truth_objects(output, boxes, labels, iou_threshold, region=None):
    """The ground-truth objects of one image, each matched as its target
    matches it: the output box of its label of highest IoU, if over
    ``iou_threshold`` (its score is recorded; else ``score`` is None and the
    map of the object is empty).

    Args:
        output: one image's detached output mapping
        boxes: (x1, y1, x2, y2) per object, in input pixels
        labels: class index per object (None: a class the model lacks, never matched)
        region (None): the image's (x1, y1, x2, y2) in the input, to which
            the output boxes are clipped before they are matched (stored
            boxes are clipped to the image)
    """
    out = []
    for i, (box, label) in enumerate(zip(boxes, labels)):
        match = None if label is None else _matched(output["boxes"].float(), output["labels"], box, label,
                                                    iou_threshold, region)
        score = None if match is None else float(output["scores"][match[0]])
        out.append(DetectedObject(tuple(float(v) for v in box), -1 if label is None else int(label), score, i,
                                  box_target(box, -1 if label is None else label, iou_threshold, region)))
    return out


class InputGeometry:
    """Where a detector's layers lie over its input image.

    A torchvision detector's ``transform`` resizes each image and pads the
    batch to a multiple of 32: a layer's grid covers the padded tensor, and
    the image is its top-left ``image_sizes[b]``. Recorded from the
    transform's output (an ``ImageList``: ``tensors`` and ``image_sizes``) in
    the forward; a model without one has grids over the input itself.

    Args:
        model: the detector
    """

    def __init__(self, model):
        transform = getattr(model, "transform", None)
        self.transform = transform if isinstance(transform, torch.nn.Module) else None
        self.padded_hw, self.image_sizes = None, None

    @contextmanager
    def recording(self):
        """Records the padded size and each image's size during the forward in the block."""
        if self.transform is None:
            yield self
            return

        def hook(module, args, output):
            images = output[0] if isinstance(output, tuple) else output
            if hasattr(images, "tensors") and hasattr(images, "image_sizes"):
                self.padded_hw = tuple(images.tensors.shape[-2:])
                self.image_sizes = [tuple(int(v) for v in s) for s in images.image_sizes]

        handle = self.transform.register_forward_hook(hook)
        try:
            yield self
        finally:
            handle.remove()

    def matrices(self, grid_hw, input_hw, b, device):
        """The (H, h) and (W, w) matrices that resample a layer's (h, w) grid
        onto image ``b``'s (H, W) input: cv2's bilinear resize of the grid to
        the padded tensor, cropped to the image, then resized to the input;
        without padding, the direct resize grad-cam makes."""
        h, w = grid_hw
        H, W = input_hw
        if self.padded_hw is None or tuple(self.image_sizes[b]) == tuple(self.padded_hw):
            return _bilinear_matrix(h, H, device), _bilinear_matrix(w, W, device)
        (ph, pw), (ih, iw) = self.padded_hw, self.image_sizes[b]
        rows = _bilinear_matrix(ih, H, device) @ _bilinear_matrix(h, ph, device)[:ih]
        cols = _bilinear_matrix(iw, W, device) @ _bilinear_matrix(w, pw, device)[:iw]
        return rows, cols


def detector_num_classes(model):
    """How many classes a detector scores, read from its head (torchvision's
    Faster R-CNN, RetinaNet, FCOS, SSD), its ``num_classes``, or None."""
    for path, attr in (("roi_heads.box_predictor.cls_score", "out_features"), ("head.classification_head", "num_classes"),
                       ("head.classification_head", "num_columns"), ("", "num_classes")):
        obj = model
        for part in filter(None, path.split(".")):
            obj = getattr(obj, part, None)
        n = getattr(obj, attr, None)
        if isinstance(n, int) and n > 0:
            return n
    return None


def resizes_inside(module):
    """Whether a module resizes its input itself (a torchvision detector's
    ``transform``): it is then given the whole image, unresized."""
    transform = getattr(module, "transform", None)
    return isinstance(transform, torch.nn.Module) and hasattr(transform, "min_size")
