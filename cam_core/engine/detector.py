"""A detector's batch: one forward, and per-object gradients batched across images.

grad-cam explains a detector one target at a time: a forward and a backward
per call, so per-object maps of N objects cost N forwards and N backwards.
Here one hooked forward serves the batch; the k-th backward gives the
gradients of the k-th object of every image at once (the images of a batch
do not interact in a detector in eval mode), so a batch costs
``max(objects per image)`` backwards over the graph of that one forward.
(``torch.autograd.grad(..., is_grads_batched=True)`` computes the same in one
call through vmap; measured on a CPU it was slower than this loop, 7.2 s
against 5.6 s for four objects of a Faster R-CNN batch, and its fallback over
torchvision's RoI ops warns on every call.)

A sample's map explains all its objects together, as grad-cam's
``FasterRCNNBoxScoreTarget`` with every box does: its gradients are the sum
of the objects' (gradients are linear in the target), so it costs nothing
more. Gradient-free methods (EigenCAM) give one map, the same for each object.

Memory: the graph is recorded from the explained layers on (:mod:`.graph`),
not from the input; each object's maps are finished (placed at the input's
size) only when read, image by image (:class:`ObjectMaps`), instead of a
batch's images x objects full-size maps at once. What a batch still holds:
the graph of the model after the layers for its images (a Faster R-CNN's
region head over its proposals) and the gradients of one backward.
"""
import copy
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import CamArgumentError
from . import graph
from .detection import InputGeometry, check_detection_output, detached
from .fastmaps import RAW_MAPS, LayerGrids, _min_max
from .methods import METHODS
from .precision import Gradients
from .state import preserved_state

logger = logging.getLogger(__name__)


def check_detector_methods(methods, aug_smooth=False):
    """Refuses what a detector cannot be explained with.

    Raises:
        CamArgumentError: (``methods``) for a method whose maps need more than
            the activations and per-object gradients; (``aug_smooth``) for
            aug_smooth, whose flipped copies would move the boxes
    """
    refused = [m for m in methods if not METHODS[m].fast]
    if refused:
        allowed = ", ".join(m for m, spec in METHODS.items() if spec.fast)
        raise CamArgumentError(
            "methods", f"{', '.join(refused)} cannot explain a detector here; the methods that can: {allowed}")
    if aug_smooth:
        raise CamArgumentError(
            "aug_smooth", "aug_smooth flips the image, which moves every box: it does not apply to detectors")


@dataclass
class DetectionResult:
    """Maps of one detector batch.

    Attributes:
        maps: ``{(method, layer): (B, H, W) float32 tensor in [0, 1]}``, each
            image's map of all its objects, at the input's (H, W)
        peaks: same keys, (B,) numpy: each map's max after its ReLU
        objects: per image its list of :class:`cam_core.engine.detection.DetectedObject`
        object_maps: same keys, per image a (K, H, W) float32 tensor, one map
            per object (an :class:`ObjectMaps`: each image's are finished when read)
    """

    maps: dict
    peaks: dict
    objects: list
    object_maps: dict


class DetectorEngine:
    """Computes detector maps for a fixed model, layers and methods.

    Args:
        model: the detector (already on ``device``)
        layers: :class:`cam_core.types.LayerInfo` of each layer (pyramid levels included)
        methods: canonical names of methods :func:`check_detector_methods` allows
        device: a torch device
        eigen_smooth (False): grad-cam's ``eigen_smooth``
        precision ("fp32"): the forward and backward's, see :mod:`.precision`
    """

    def __init__(self, model, layers, methods, device="cpu", eigen_smooth=False, precision="fp32"):
        check_detector_methods(methods)
        self.model, self.layers, self.methods = model, layers, methods
        self.device = torch.device(device)
        self.eigen_smooth = bool(eigen_smooth)
        self.precision = precision
        self.gradients = Gradients(precision)
        self.geometry = InputGeometry(model)
        self._warned = set()

    def close(self):
        """Nothing is held between batches (for symmetry with :class:`cam_core.CamEngine`)."""

    def explain(self, x, choose):
        """Maps of one batch.

        Args:
            x: a (B, 3, H, W) input tensor, or for a detector that resizes
                inside (:func:`cam_core.engine.detection.resizes_inside`) a list
                of (3, H, W) tensors of any sizes
            choose: ``f(outputs) -> per image a list of DetectedObject``, given
                the detached output mappings (boxes, labels, scores, and
                masks when the detector gives them)

        Returns:
            a :class:`DetectionResult`
        """
        x = [t.to(self.device) for t in x] if isinstance(x, (list, tuple)) else x.to(self.device)
        with preserved_state(self.model), torch.enable_grad():
            return self._explain(x, choose)

    def _explain(self, x, choose):
        b = len(x)
        hws = [tuple(t.shape[-2:]) for t in x]  # a list's images may differ in size
        out, acts = self._forward(x, b)
        objects = choose([detached(o) for o in out])
        if len(objects) != b:
            raise RuntimeError(f"{len(objects)} object lists for a batch of {b}")
        tensors = [info.select(acts[info.module]) for info in self.layers]
        grids = [info.to_nchw(t, hws[0]).detach().float() for info, t in zip(self.layers, tensors)]
        gradient = [m for m in self.methods if METHODS[m].kind == "gradient"]
        counts = [len(o) for o in objects]

        # the k-th backward: the k-th object of every image that has one
        per_object = {(m, i.name): [[] for _ in range(b)] for m in self.methods for i in self.layers}
        summed = [torch.zeros_like(g) for g in grids] if gradient else []
        kmax = max(counts, default=0)
        for k in range(kmax if gradient else 0):
            rows = [r for r in range(b) if counts[r] > k]
            loss = sum(objects[r][k].target(out[r]) for r in rows)
            matched = loss.requires_grad  # False: no object of this round matched an output box (empty maps)
            grads = [None] * len(tensors)
            if matched:
                grads = self.gradients(loss, tensors, retain_graph=k < kmax - 1)
            for li, (info, g) in enumerate(zip(self.layers, grads)):
                g = self._grad(info, g, grids[li], hws[0], matched)
                summed[li] += g
                sub = LayerGrids(grids[li][rows], g[rows])
                for m in gradient:
                    raw = RAW_MAPS[m](sub, self.eigen_smooth)
                    for j, r in enumerate(rows):
                        per_object[(m, info.name)][r].append(raw[j])
        del out, tensors
        acts.clear()  # frees the graph before the maps are finished

        maps, peaks = {}, {}
        for li, info in enumerate(self.layers):
            for m in self.methods:
                key = (m, info.name)
                whole = LayerGrids(grids[li], summed[li] if m in gradient else None)
                raw = RAW_MAPS[m](whole, self.eigen_smooth)
                maps[key], peaks[key] = self._finish(raw, hws, range(b))
                if m not in gradient:  # gradient-free: the one map explains each object
                    per_object[key] = [[raw[r]] * counts[r] for r in range(b)]
        # this batch's geometry, whenever the maps are read
        finish = functools.partial(self._finish, geometry=copy.copy(self.geometry))
        object_maps = {key: ObjectMaps(finish, lists, hws, self.device) for key, lists in per_object.items()}
        peaks = dict(zip(peaks, torch.stack(list(peaks.values())).cpu().numpy())) if peaks else {}
        return DetectionResult(maps, peaks, objects, object_maps)

    def _forward(self, x, b):
        """The hooked forward (:func:`.graph.forward`): ``(outputs in fp32, {module: output})``."""
        def call(xin):
            with self.geometry.recording():
                out = self.model(xin)
            check_detection_output(out, b)
            return out

        modules = {info.module for info in self.layers}
        out, acts, _ = graph.forward(call, x, modules, lambda out: [o["scores"] for o in out], self.precision,
                                     self.device, model=self.model)
        return out, acts

    def _grad(self, info, g, grid, hw, matched):
        if g is not None:
            return info.to_nchw(g, hw).detach().float()
        if matched and info.name not in self._warned:  # e.g. a pyramid level only the region proposals read
            self._warned.add(info.name)
            logger.warning("layer '%s' gets no gradient from the explained objects' scores: its gradient maps are empty",
                           info.name)
        return torch.zeros_like(grid)

    def _finish(self, raw, hws, rows, geometry=None):
        """grad-cam's post-processing (ReLU, min-max, bilinear resize, min-max)
        with the resize following the detector's own resize and padding.

        Args:
            raw: (N, h, w) raw maps
            hws: each image's input (H, W)
            rows: per map, the image it belongs to
            geometry: the batch's :class:`InputGeometry` (default: the latest forward's)

        Returns:
            ``(maps, peaks)``: a (N, H, W) tensor (a list of (H, W) maps when
            the images differ in size) and the (N,) peaks after the ReLU
        """
        raw = raw.clamp_min(0)
        peaks = raw.amax(dim=(1, 2))
        scaled = _min_max(raw)
        rows = list(rows)
        out = [None] * len(rows)
        for r in dict.fromkeys(rows):  # the maps of one image at once
            at = [i for i, q in enumerate(rows) if q == r]
            m_rows, m_cols = (geometry or self.geometry).matrices(tuple(raw.shape[-2:]), hws[r], r, raw.device)
            placed = _min_max((m_rows @ scaled[at] @ m_cols.T).clamp_min(0))
            for j, i in enumerate(at):
                out[i] = placed[j]
        return (torch.stack(out) if len({m.shape for m in out}) == 1 else out), peaks


class ObjectMaps(Sequence):
    """One (method, layer)'s per-object maps of a batch, image by image:
    ``maps[r]`` is image r's (K, H, W) float32 tensor, finished (placed at the
    input's size) when read, so that a batch never holds all its images'
    objects at full size at once."""

    def __init__(self, finish, raws, hws, device):
        self._finish, self._raws, self._hws, self._device = finish, raws, hws, device

    def __len__(self):
        return len(self._raws)

    def __getitem__(self, r):
        rows = self._raws[r]
        if not rows:
            return torch.zeros((0, *self._hws[r]), device=self._device)
        return self._finish(torch.stack(rows), self._hws, [r] * len(rows))[0]
