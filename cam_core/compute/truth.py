"""The ground truth a batch needs, read from the database: the labels a
classifier's maps explain, the regions a segmenter's maps explain, and the
objects every map is scored against."""
import numpy as np

from ..engine.targets import class_index
from ..labels import mask_targets_of


def target_labels(plan, todo):
    """Per sample of ``todo``, the model class of its target field's label (None: no label)."""
    names = todo.values(f"{plan.target.field}.label")
    return [None if n is None else class_index(plan.classes, n, plan.num_outputs) for n in names]


def objects(plan, sample_ids):
    """The ``gt_field`` labels of these samples, in order."""
    return plan.dataset.select(sample_ids, ordered=True).values(plan.gt_field)


def segmentation_regions(plan, group, sample_ids, out_hw, in_hw):
    """Per item, its target field's mask as model classes on the output grid
    (-1 outside the image or where no class matches)."""
    field = plan.target.field
    segs = plan.dataset.select(sample_ids, ordered=True).values(field)
    lookup = _value_to_class(mask_targets_of(plan.dataset, field), plan.classes)
    regions = []
    for it, seg in zip(group, segs):
        mask = None if seg is None else seg.get_mask()
        if mask is None:
            regions.append(np.full(out_hw, -1))
            continue
        if mask.ndim == 3:
            mask = mask[..., 0]
        regions.append(it.frame.sample_mask(lookup(mask), out_hw, in_hw, fill=-1))
    return regions


def _value_to_class(mask_targets, classes):
    """Maps ground-truth mask values to model class indices by class name
    (values without a matching class become -1); without mask targets,
    values are taken as class indices."""
    if not mask_targets or classes is None:
        return lambda m: m.astype(np.int64)
    names = {str(c): i for i, c in enumerate(classes)}
    table = {int(v): names.get(str(n), -1) for v, n in mask_targets.items() if str(v).isdigit()}

    def lookup(m):
        out = np.full(m.shape, -1, dtype=np.int64)
        for v, c in table.items():
            out[m == v] = c
        return out

    return lookup
