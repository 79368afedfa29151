"""One batch: stack the inputs, give every image its target (a detector:
its objects), run the engine's one pass, score ROAD, and place the maps for
the writer. A sample whose maps would not be true is left out with the
reason (:mod:`cam_core.skips`): the model's output or maps hold NaN or
infinity, or a detector's maps explain no object."""
import math
from dataclasses import fields, replace

import torch

from ..engine.state import preserved_state
from ..engine.targets import background_index, classifier_targets, segmenter_targets
from ..scoring.road import road_scores
from ..skips import not_finite
from . import detect, truth
from .placing import PlacedBatch, place_batch


def explain(plan, engine, group, ids, labels):
    """The :class:`cam_core.compute.placing.PlacedBatch` of one group of equally shaped items.

    Args:
        plan: the run's :class:`cam_core.compute.plan.Plan`
        engine: the run's :class:`cam_core.engine.CamEngine`
        group: :class:`cam_core.media.loader.Item` of one input shape
        ids: the sample ids, indexed like the items
        labels: per sample the target label's class (classifier field
            targets), or None
    """
    if len({tuple(it.tensor.shape) for it in group}) > 1:  # a detector that resizes inside takes any sizes
        return _explain_detector(plan, engine, group, [_to_device(it.tensor, engine) for it in group], ids)
    x = _to_device(torch.stack([it.tensor for it in group]), engine)
    sample_ids = [ids[it.index] for it in group]
    if plan.detector:
        return _explain_detector(plan, engine, group, x, ids)
    objects = truth.objects(plan, sample_ids) if plan.gt_field else [None] * len(group)
    result = engine.explain(x, target_maker(plan, group, sample_ids, labels, tuple(x.shape[-2:])))
    road = {}
    if plan.faithfulness:
        # ROAD's forwards see the model as the maps' pass did: in eval mode,
        # its buffers (BatchNorm statistics) untouched, its state restored
        with preserved_state(engine.model):
            road = road_scores(engine.adapter, x.to(engine.device), result)
    placed = place_batch(plan, group, result, road, objects, sample_ids)
    return drop(plan, placed, _not_finite_rows(result))


def target_maker(plan, group, sample_ids, labels, in_hw):
    """``f(output) -> (targets, indices, scores, confidences)`` of a
    classifier's or segmenter's group (see :meth:`cam_core.CamEngine.explain`).

    Args:
        plan: reads ``segmenter``, ``target``, ``target_class``, ``classes``
            (and ``dataset`` for a segmentation field target)
        group: the items (their frames), ``sample_ids`` their samples
        labels: per sample index the target label's class (classifier field
            targets), or None
        in_hw: the model input's (H, W)
    """
    spec = plan.target

    def make_targets(out):
        if not plan.segmenter:
            if spec.kind == "prediction":
                indices = None
            elif spec.kind == "class":
                indices = [spec.class_index] * len(group)
            else:
                indices = [labels[it.index] for it in group]
            return classifier_targets(out, indices)
        regions = [None] * len(group)
        indices = [spec.class_index if spec.kind == "class" else None] * len(group)
        if spec.kind == "field":
            regions = truth.segmentation_regions(plan, group, sample_ids, tuple(out.shape[-2:]), in_hw)
            indices = [plan.target_class] * len(group)
        return segmenter_targets(out, indices, regions, background_index(plan.classes))

    return make_targets


def _explain_detector(plan, engine, group, x, ids):
    sample_ids = [ids[it.index] for it in group]
    objects = truth.objects(plan, sample_ids) if plan.gt_field else [None] * len(group)
    choose = detect.chooser(plan, group, sample_ids)
    result = engine.explain(x, choose)
    placed = place_batch(plan, group, detect.as_batch_result(result), {}, objects, sample_ids)
    detect.add_objects(plan, placed, group, result, getattr(choose, "truth_ids", None))
    return drop(plan, placed, detect.untrue_rows(plan, placed, result, choose))


def finite(value):
    """Whether a score (a float, a numpy or torch scalar, or None: no score) holds no NaN or infinity."""
    return value is None or math.isfinite(float(value))


def _not_finite_rows(result):
    """``{row: Skip}`` of the images whose score or maps hold NaN or infinity."""
    bad = {}
    for b, score in enumerate(result.scores):
        if not finite(score):
            bad[b] = not_finite("the model's scores")
        elif not all(finite(p[b]) for p in result.peaks.values()):
            bad[b] = not_finite("the maps (the activations or gradients of the explained layers)")
    return bad


def drop(plan, placed, bad):
    """A :class:`cam_core.compute.placing.PlacedBatch` without the rows of
    ``bad`` (``{row: Skip}``), which join its skips: nothing of them is stored."""
    if not bad:
        return placed
    rows = [b for b in range(len(placed.sample_ids)) if b not in bad]
    gone = [placed.sample_ids[b] for b in sorted(bad)]
    paths = dict(zip(*plan.dataset.select(gone).values(["id", "filepath"])))
    skipped = [{"id": sid, "filepath": paths.get(sid), "kind": bad[b].kind, "reason": bad[b].reason}
               for b, sid in zip(sorted(bad), gone)]
    kept = {f.name: [getattr(placed, f.name)[b] for b in rows] for f in fields(PlacedBatch)
            if f.name != "skipped" and getattr(placed, f.name) is not None}
    return replace(placed, skipped=list(placed.skipped) + skipped, **kept)


def _to_device(x, engine):
    if engine.device.type == "cuda":  # page-locked, so the copy overlaps the previous batch's work
        return x.pin_memory().to(engine.device, non_blocking=True)
    return x


def empty(skipped):
    """A batch whose every sample was skipped: only its skips are recorded."""
    return PlacedBatch([], [], [], [], [], [], [], [], skipped)
