"""From a batch's maps to what is stored: each map placed in its image's
frame, scored, made an ``fo.Heatmap`` (PNG file or inline), and each
sample's fields written in one update."""
import os
from itertools import combinations

import fiftyone as fo
import numpy as np

from ..engine.targets import class_name
from ..labels import mask_targets_of
from ..media.mapfiles import make_heatmap, to_uint8
from ..scoring import agreement, region_mask, region_scores, shape_scores


def sample_labels(plan, item, sample_id, result, b, road, objects):
    """``{field: label}`` of one sample: its Heatmaps and its agreement values.

    Args:
        plan: the run's :class:`cam_core.compute.plan.Plan`
        item: the sample's :class:`cam_core.media.loader.Item` (its frame)
        sample_id: the sample's id
        result: the batch's :class:`cam_core.engine.BatchResult`; ``b`` the sample's row
        road: ``{(method, layer): [score per row]}`` or ``{}``
        objects: the sample's ``gt_field`` label, or None
    """
    c = result.indices[b]
    base = {
        "target_index": int(c),
        "target_label": class_name(plan.classes, c),
        "target_score": result.scores[b],
        "target_confidence": result.confidences[b],
    }
    labels, placed, region = {}, {}, False
    for f, (method, layer) in plan.fields.items():
        # scores describe the stored 8-bit map, so scoring it later gives the same values
        cam = placed[f] = to_uint8(item.frame.place(result.maps[(method, layer)][b])) / 255.0
        attrs = dict(base, **shape_scores(cam, raw_peak=float(result.peaks[(method, layer)][b])))
        if plan.gt_field:
            if region is False:  # one region per sample, shared by its maps
                region = region_mask(objects, cam.shape, base["target_label"], c, plan.all_objects,
                                     mask_targets_of(plan.dataset, plan.gt_field))
            attrs.update(region_scores(cam, region, plan.iou_threshold))
        if (method, layer) in road:
            attrs["road"] = road[(method, layer)][b]
        path = os.path.join(plan.output_dir, f, sample_id + ".png")
        labels[f] = make_heatmap(cam, plan.storage, path, **attrs)
    if plan.agreement_field:
        labels[plan.agreement_field] = _agreement(placed, plan.agreement_groups)
    return labels


def _agreement(placed, groups):
    values = {}
    for name, fields in groups.items():
        corr = [agreement([placed[a], placed[b]]) for a, b in combinations(fields, 2)]
        corr = [c for c in corr if c is not None]
        values[name] = float(np.mean(corr)) if corr else None
    return fo.DynamicEmbeddedDocument(**values)


def write(dataset, updates):
    """Writes each sample's fields (``{sample id: {field: label}}``) in one
    update, so no sample holds half a run."""
    if not updates:
        return
    view = dataset.select(list(updates), ordered=True)
    for sample in view.iter_samples(autosave=True, batch_size=len(updates)):
        for field, label in updates[sample.id].items():
            sample[field] = label
