"""What :func:`cam_core.explain` returns: one image's maps, in memory, aligned with the image."""
from collections.abc import Mapping

import numpy as np
import torch

from ..media.mapfiles import STORED_RANGE
from ..scoring import shape_scores_batch
from .placing import to_stored


def resized(canvas, size):
    """A (H, W) float map as a float32 array of ``size`` = (width, height),
    bilinearly (antialiased when shrunk); the same geometry as the App's,
    which stretches a stored map over the whole image."""
    w, h = int(size[0]), int(size[1])
    t = canvas.float()
    if tuple(t.shape) != (h, w):
        shrink = h < t.shape[0] or w < t.shape[1]
        t = torch.nn.functional.interpolate(t[None, None], size=(h, w), mode="bilinear", align_corners=False,
                                            antialias=shrink)[0, 0].clamp(0, 1)
    return t.cpu().numpy().astype(np.float32, copy=False)


class Explanation(Mapping):
    """The maps of one image: ``{(method, layer): (H, W) float32 array in [0, 1]}``
    at the image's own size (``explanation[("gradcam", "layer4")]``; ``dict(explanation)``
    for all of them), zero where the model did not see the image (outside a
    centre crop). Each map is made when first read.

    Attributes:
        keys: the ``(method, layer)`` of each map (FullGrad's layer is None)
        image_size: the image's (width, height)
        target: what was explained, as asked (``"prediction"``, ``"class:cat"``,
            ``"field:ground_truth"``; ``"class:cat, not class:dog"`` for a
            :meth:`minus`)
        target_index, target_label, target_score, target_confidence: the class
            explained, its score and (classifiers) softmax probability; None
            for a detector's maps (they explain all its objects)
        scores: ``{(method, layer): {score: value}}``: each map's shape scores
            (``peak``, ``centroid_x``, ``spread``, ``entropy``, ...), the values
            :func:`cam_core.compute_cams` stores for the same map
        objects: a detector's explained objects, each ``{"label", "index",
            "score", "box"}`` (``box``: FiftyOne's relative ``[x, y, w, h]``); ``[]`` otherwise
        object_scores: ``{(method, layer): [per object {"inside", "on_others",
            "background", "peak_inside"}]}``, each from the object's own map
        model: the model's name (as a run records it)
        source: the image's file path, when it was given as a path or a sample
    """

    def __init__(self, canvases, seen, frame, peaks, target, index=None, label=None, score=None, confidence=None,
                 objects=None, object_canvases=None, object_scores=None, model=None, source=None):
        self._canvases = canvases  # {key: (h, w) float tensor}: the map at the model's scale, placed (CPU)
        self._seen = seen  # (h, w) bool tensor: where the model saw the image
        self._frame = frame
        self._peaks = peaks
        self._maps = {}
        self._object_canvases = object_canvases or {}
        self.image_size = (int(frame.width), int(frame.height))
        self.target, self.target_index, self.target_label = target, index, label
        self.target_score, self.target_confidence = score, confidence
        self.objects = list(objects or [])
        self.object_scores = dict(object_scores or {})
        self.model, self.source = model, source
        keys = list(canvases)
        lo, hi = STORED_RANGE
        shapes = shape_scores_batch(self.stored_maps(), [peaks.get(k) for k in keys] if peaks else None, lo, hi)
        self.scores = dict(zip(keys, shapes))

    # identity, not Mapping's comparison of the maps (arrays have no truth value)
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __getitem__(self, key):
        key = tuple(key)
        if key not in self._maps:
            self._maps[key] = resized(self._canvases[key], self.image_size)
        return self._maps[key]

    def __iter__(self):
        return iter(self._canvases)

    def __len__(self):
        return len(self._canvases)

    def __repr__(self):
        keys = ", ".join(f"{m}/{l}" for m, l in self._canvases)
        what = f"{len(self.objects)} objects" if self.objects else f"target {self.target_label!r}"
        w, h = self.image_size
        return f"<Explanation of a {w}x{h} image, {what}: {keys}>"

    @property
    def maps(self):
        """Every map, as a dict (each made at the image's size)."""
        return {k: self[k] for k in self}

    def resized(self, key, size):
        """One map at another ``size`` = (width, height), e.g. a thumbnail's
        (the same geometry as the image-sized map, scaled)."""
        return resized(self._canvases[tuple(key)], size)

    def stored_maps(self, keys=None):
        """A (F, h, w) uint8 tensor of the maps as :func:`cam_core.compute_cams`
        stores them (``1 + round(254 * v)``, 0 where the model did not see),
        at the model's scale."""
        keys = list(self._canvases) if keys is None else [tuple(k) for k in keys]
        return torch.stack([to_stored(self._canvases[k], self._seen) for k in keys])

    def map_scale(self):
        """How much the stored map is shrunk from the model's scale (see :meth:`cam_core.media.geometry.Frame.map_scale`)."""
        return self._frame.map_scale()

    def object_map(self, index, key=None):
        """Object ``index``'s own map (a detector), at the image's size.

        Args:
            index: the object's position in :attr:`objects`
            key (None): a ``(method, layer)``; None for the first
        """
        key = tuple(key) if key is not None else next(iter(self._object_canvases))
        return resized(self._object_canvases[key][index], self.image_size)

    @property
    def object_maps(self):
        """``{(method, layer): [each object's map at the image's size]}``: all
        made at once (for many objects of a large image, :meth:`object_map` is lighter)."""
        return {k: [self.object_map(i, k) for i in range(len(self.objects))] for k in self._object_canvases}

    def minus(self, other):
        """The evidence for this explanation's class that is not evidence for
        ``other``'s: per map ``clip(self - other, 0, 1)`` (not rescaled, so a
        weak difference stays faint), for "why A and not B?".

        Args:
            other: an :class:`Explanation` of the same image with the same maps

        Returns:
            an :class:`Explanation` whose target is ``"<A>, not <B>"``; its
            target class, score and confidence are this one's; no objects

        Raises:
            ValueError: when the two do not hold the same maps of one image
        """
        if set(self) != set(other) or self.image_size != other.image_size or self.source != other.source:
            raise ValueError("minus needs two explanations of the same image with the same methods and layers")
        canvases = {k: (self._canvases[k] - other._canvases[k]).clamp(0, 1) for k in self}
        return Explanation(canvases, self._seen, self._frame, None, f"{self.target}, not {other.target}",
                           self.target_index, self.target_label, self.target_score, self.target_confidence,
                           model=self.model, source=self.source)
