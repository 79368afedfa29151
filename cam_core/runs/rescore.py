"""Ground-truth scores for a run that already exists, from its stored maps."""
from ..labels import check_gt_field, check_iou_threshold, mask_targets_of
from ..media.mapfiles import load_map
from ..scoring import region_mask, region_scores
from .record import run_config


def check_score_args(samples, run_key, gt_field, all_objects=False, iou_threshold=0.5):
    """Checks :func:`score_regions`' arguments as it does, scoring nothing.

    Returns:
        the run's config and the threshold as a float

    Raises:
        CamArgumentError: naming the refused parameter
    """
    config = run_config(samples, run_key)
    check_gt_field(samples, gt_field)
    return config, check_iou_threshold(iou_threshold)


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

    Raises:
        CamArgumentError: naming the refused parameter, before anything is written
    """
    config, iou_threshold = check_score_args(samples, run_key, gt_field, all_objects, iou_threshold)
    dataset = samples._root_dataset
    mask_targets = mask_targets_of(dataset, gt_field)
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
            for name, value in region_scores(cam, cache[key], iou_threshold).items():
                heat[name] = value
        n += scored
    dataset.add_dynamic_sample_fields(fields=fields)  # the new scores become sidebar filters
    config.gt_field, config.all_objects, config.iou_threshold = gt_field, bool(all_objects), iou_threshold
    dataset.update_run_config(run_key, config)
    return n
