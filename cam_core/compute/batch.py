"""One batch: stack the inputs, give every image its target, run the
engine's one pass, score ROAD, and build each sample's labels."""
import torch

from ..engine.targets import background_index, classifier_targets, segmenter_targets
from ..scoring.road import road_scores
from . import truth
from .writer import sample_labels


def explain(plan, engine, group, ids, labels):
    """``{sample id: {field: label}}`` for one group of equally shaped items.

    Args:
        plan: the run's :class:`cam_core.compute.plan.Plan`
        engine: the run's :class:`cam_core.engine.CamEngine`
        group: :class:`cam_core.media.loader.Item` of one input shape
        ids: the sample ids, indexed like the items
        labels: per sample the target label's class (classifier field
            targets), or None
    """
    x = torch.stack([it.tensor for it in group])
    in_hw = tuple(x.shape[-2:])
    sample_ids = [ids[it.index] for it in group]
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

    result = engine.explain(x, make_targets)
    road = road_scores(engine.adapter, x.to(engine.device), result) if plan.faithfulness else {}
    objects = truth.objects(plan, sample_ids) if plan.gt_field else [None] * len(group)
    return {
        sid: sample_labels(plan, it, sid, result, b, road, objects[b])
        for b, (it, sid) in enumerate(zip(group, sample_ids))
    }
