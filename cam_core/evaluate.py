"""Ground-truth scores for a run that already exists."""
import numpy as np

from . import scores as camscores
from .regions import check_gt_field, region_mask
from .runs import CamRunConfig


def run_config(samples, run_key):
    """The :class:`cam_core.runs.CamRunConfig` of a run; ValueError if it is not a CAM run."""
    if run_key not in samples.list_runs():
        raise ValueError(f"no run '{run_key}' on this collection; runs: {samples.list_runs()}")
    config = samples.get_run_info(run_key).config
    if not isinstance(config, CamRunConfig):
        raise ValueError(f"run '{run_key}' is not a CAM run")
    return config


def load_map(heatmap):
    """A stored Heatmap's map as a float array in [0, 1] (PNG or inline)."""
    if heatmap.map is not None:
        arr = np.asarray(heatmap.map, dtype=np.float64)
    else:
        from PIL import Image

        with Image.open(heatmap.map_path) as img:
            arr = np.asarray(img, dtype=np.float64)
    lo, hi = heatmap.range if heatmap.range else (0.0, 255.0)
    return (arr - lo) / (hi - lo) if hi > lo else arr


def score_regions(samples, run_key, gt_field, all_objects=False, iou_threshold=0.5, progress=None):
    """Adds ``mass_inside``, ``pointing_hit`` and ``iou`` to every Heatmap of an existing run.

    The same scores :func:`cam_core.compute_cams` computes with ``gt_field=``,
    from the stored maps (nothing is recomputed by the model).

    Args:
        samples: the run's dataset, or a view of it (only its samples are scored)
        run_key: a CAM run's key
        gt_field: an ``fo.Detections``, ``fo.Polylines`` or ``fo.Segmentation`` field
        all_objects (False): every object instead of those of each map's target class
        iou_threshold (0.5): relative threshold of the map for ``iou``
        progress (None): FiftyOne's progress option

    Returns:
        the number of samples scored (those with at least one of the run's maps)
    """
    config = run_config(samples, run_key)
    check_gt_field(samples, gt_field)
    if not isinstance(iou_threshold, (int, float)) or not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be a number in (0, 1]; got {iou_threshold!r}")
    dataset = samples._root_dataset
    mask_targets = dataset.mask_targets.get(gt_field) or dataset.default_mask_targets or {}
    fields = list(config.fields)
    n = 0
    view = samples.select_fields(fields + [gt_field])
    for sample in view.iter_samples(autosave=True, progress=progress):
        gt = sample[gt_field]
        cache = {}
        scored = False
        for f in fields:
            heat = sample[f]
            if heat is None:
                continue
            scored = True
            cam = load_map(heat)
            key = (cam.shape, heat.target_label, heat.target_index)
            if key not in cache:  # maps of one sample share their region
                cache[key] = region_mask(gt, cam.shape, heat.target_label, heat.target_index, all_objects, mask_targets)
            for name, value in camscores.region_scores(cam, cache[key], iou_threshold).items():
                heat[name] = value
        n += scored
    dataset.add_dynamic_sample_fields(fields=fields)  # the new scores become sidebar filters
    config.gt_field, config.all_objects, config.iou_threshold = gt_field, bool(all_objects), float(iou_threshold)
    dataset.update_run_config(run_key, config)
    return n
