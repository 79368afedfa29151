"""A batch's maps placed in their images' frames on the model's device:
converted to 8 bits, with their shape scores and the agreement of the
sample's maps (what :class:`cam_core.compute.writer.BatchWriter` stores)."""
import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch

from ..media.mapfiles import STORED_RANGE
from ..scoring import agreement_batch, shape_scores_batch


@dataclass
class PlacedBatch:
    """One batch, ready to be stored.

    Attributes:
        sample_ids: the samples' ids
        maps: per sample ``{field: (H, W) uint8 array}`` in the image's frame
        scales: per sample the map's :meth:`cam_core.media.geometry.Frame.map_scale`
        targets: per sample ``(index, score, confidence)``
        shape: per sample ``{field: shape scores}`` (computed on the device)
        agreement: per sample ``{group: mean correlation or None}``
        road: per sample ``{field: ROAD score}`` (empty without faithfulness)
        objects: per sample its ``gt_field`` label, or None
        skipped: the batch's skipped samples (``{"id", "filepath", "kind", "reason"}``)
        detections: a detector's batch: per sample its explained objects
            (:func:`cam_core.compute.detect.add_objects`), else None
    """

    sample_ids: list
    maps: list
    scales: list
    targets: list
    shape: list
    agreement: list
    road: list
    objects: list
    skipped: list
    detections: list = None


def to_stored(cam, seen):
    """A [0, 1] float map (tensor) as stored: ``1 + round(254 * v)`` where
    the model saw the image (``seen``), 0 elsewhere (see
    :data:`cam_core.media.mapfiles.STORED_RANGE`)."""
    return torch.where(seen, _levels(cam), 0)


def _levels(cam):
    """``1 + round(254 * v)`` of a [0, 1] float map (tensor), as uint8 (in
    place on one temporary: these maps are the batch's largest arrays)."""
    lo, hi = STORED_RANGE
    values = cam * float(hi - lo)
    return values.round_().clamp_(0, hi - lo).add_(lo).to(torch.uint8)


def place_batch(plan, group, result, road, objects, sample_ids):
    """Places, converts and scores every map of one explained group on its device.

    Args:
        plan: the run's :class:`cam_core.compute.plan.Plan`
        group: the group's :class:`cam_core.media.loader.Item` (their frames)
        result: the group's :class:`cam_core.engine.BatchResult`
        road: ``{(method, layer): [score per row]}`` or ``{}``
        objects: per sample its ``gt_field`` label, or None
        sample_ids: per row the sample id

    Returns:
        a :class:`PlacedBatch` (without skips)
    """
    maps, shape, agree, roads = [], [], [], []
    keys = {f: tuple(k) for f, k in plan.fields.items()}
    whole = None
    if all(isinstance(result.maps[k], torch.Tensor) for k in keys.values()) and \
            any(it.frame.map_scale() == 1.0 for it in group):
        # the whole batch converted at once (its maps are (B, H, W) tensors; a detector's of mixed sizes are lists)
        whole = torch.stack([_levels(result.maps[k]) for k in keys.values()], dim=1)
    for b, it in enumerate(group):
        # one sample's maps share its canvas: placed, converted and scored together on the device
        if it.frame.map_scale() == 1.0:
            # unshrunk, converting then pasting equals pasting then converting (0 outside the input either
            # way), and pasting uint8 maps moves a quarter of the bytes
            stack = it.frame.place(whole[b] if whole is not None else _levels(_sample_maps(result, keys, b)))
        else:  # shrunk to the canvas's limit: the float maps are resampled, then converted
            cams = _sample_maps(result, keys, b)
            seen = it.frame.place(torch.ones_like(cams[0])) > 0  # what the model saw: drawn, even where 0
            stack = to_stored(it.frame.place(cams), seen)
        peaks = [float(result.peaks[k][b]) for k in keys.values()]
        lo, hi = STORED_RANGE
        shape.append(dict(zip(keys, shape_scores_batch(stack, peaks, lo, hi))))
        agree.append(_agreement(agreement_batch(stack, lo), list(keys), plan.agreement_groups)
                     if plan.agreement_field else None)
        maps.append(dict(zip(keys, stack.cpu().numpy())))
        roads.append({f: road[k][b] for f, k in keys.items() if k in road})
    targets = list(zip(result.indices, result.scores, result.confidences))
    return PlacedBatch(sample_ids, maps, [it.frame.map_scale() for it in group], targets, shape, agree, roads,
                       list(objects), [])


def _sample_maps(result, keys, b):
    """Row ``b``'s maps of ``keys`` as one (F, H, W) float tensor."""
    return torch.stack([torch.as_tensor(result.maps[k][b]) for k in keys.values()])


def _agreement(r, order, groups):
    """Each group's mean over its pairs of the sample's correlation matrix ``r``."""
    at = {f: i for i, f in enumerate(order)}
    values = {}
    for name, fields in groups.items():
        corr = [float(r[at[a], at[b]]) for a, b in combinations(fields, 2)]
        corr = [c for c in corr if not math.isnan(c)]
        values[name] = float(np.mean(corr)) if corr else None
    return values
