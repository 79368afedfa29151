"""What each map explains: one grad-cam target per image.

grad-cam builds its loss with ``zip(targets, outputs)``: a list shorter than
the batch silently gives all-zero maps for the rest, so every builder here
returns exactly one target per image.
"""
import difflib
from dataclasses import dataclass

import numpy as np

from ..errors import CamArgumentError


@dataclass
class TargetSpec:
    """A parsed ``target`` argument.

    Attributes:
        kind: ``"prediction"``, ``"field"`` or ``"class"``
        field: the label field, for ``"field"``
        class_index: the fixed class, for ``"class"`` (or a segmentation
            field's ``target_class``)
        text: the prompt of a zero-shot model's ``"text:<prompt>"`` (a
            ``"class"`` target: the prompt's class)
    """

    kind: str
    field: str = None
    class_index: int = None
    text: str = None

    def to_str(self, classes=None):
        if self.text is not None:
            return f"text:{self.text}"
        if self.kind == "prediction":
            return "prediction"
        if self.kind == "field":
            return f"field:{self.field}"
        return f"class:{class_name(classes, self.class_index)}"


def class_name(classes, index):
    if classes is not None and 0 <= index < len(classes):
        return str(classes[index])
    return str(index)


def class_index(classes, value, num_outputs, param="target"):
    """Index of a class given by name or index.

    Raises:
        CamArgumentError: (``param``) naming what is allowed
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if 0 <= value < num_outputs:
            return int(value)
        raise CamArgumentError(
            param, f"class index {value} is out of range: the model has {num_outputs} outputs (0..{num_outputs - 1})"
        )
    if classes is not None and value in list(classes):
        return list(classes).index(value)
    if classes is None:
        raise CamArgumentError(
            param, f"class '{value}' given by name, but the model has no class names; pass classes=[...] or an index"
        )
    near = difflib.get_close_matches(str(value), [str(c) for c in classes], n=5)
    hint = f"; closest: {', '.join(near)}" if near else ""
    raise CamArgumentError(param, f"class '{value}' is not one of the model's {len(classes)} classes{hint}")


def background_index(classes):
    """Index of a background class (named so) or None."""
    if classes:
        name = str(classes[0]).strip("_ ").lower()
        if name in ("background", "bg", "void"):
            return 0
    return None


def classifier_targets(out, indices):
    """grad-cam targets and infos for a classifier batch.

    Args:
        out: (B, K) logits, detached
        indices: one class index per image, or None for the predicted class
    """
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if indices is None:
        indices = out.argmax(dim=1).tolist()
    probs = out.float().softmax(dim=1)
    targets = [ClassifierOutputTarget(int(i)) for i in indices]
    scores = [float(out[b, i]) for b, i in enumerate(indices)]
    confs = [float(probs[b, i]) for b, i in enumerate(indices)]
    return targets, list(indices), scores, confs


def segmenter_targets(out, indices, regions, background):
    """grad-cam targets for a segmenter batch: one class's region, score summed over it.

    Args:
        out: (B, K, H, W) scores, detached
        indices: per image a class index or None (the most frequent predicted
            class other than background)
        regions: per image an (H, W) bool mask, or None to take the region the
            model predicts for the class
        background: the background class index or None
    """
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    pred = out.argmax(dim=1).cpu().numpy()
    targets, chosen, scores = [], [], []
    for b in range(out.shape[0]):
        c = indices[b]
        if c is None:
            c = _dominant(pred[b] if regions[b] is None else regions[b], background)
        region = regions[b]
        if region is None:
            region = pred[b] == c
        elif region.dtype != bool:  # a ground-truth label map: the class's pixels
            region = region == c
        mask = region.astype(np.float32)
        t = SemanticSegmentationTarget(int(c), mask)
        targets.append(t)
        chosen.append(int(c))
        scores.append(float(t(out[b])))
    return targets, chosen, scores, [None] * len(chosen)


def _dominant(label_map, background):
    values, counts = np.unique(label_map, return_counts=True)
    keep = values >= 0  # -1 marks pixels outside the image (padding)
    if background is not None:
        keep &= values != background
    if keep.any():
        values, counts = values[keep], counts[keep]
    return int(values[np.argmax(counts)])


def finer_targets(out, indices, comparisons=(1, 2, 3), alpha=1.0):
    """FinerCAM's targets: each class against the classes nearest to it in score.

    Mirrors ``FinerCAM.forward``: classes are sorted by ``|score - score[c]|``;
    position 0 is ``c`` itself, positions ``comparisons`` are its rivals.
    """
    from pytorch_grad_cam.utils.model_targets import FinerWeightedTarget

    scores = out.detach().cpu().numpy()
    k = scores.shape[-1]
    comparisons = list(comparisons[: max(k - 1, 0)])
    out_targets = []
    for b, c in enumerate(indices):
        order = np.argsort(np.abs(scores[b] - scores[b, c]))
        out_targets.append(FinerWeightedTarget(int(c), [int(order[i]) for i in comparisons], alpha))
    return out_targets
