"""Ground-truth scores for a run that already exists, from its stored maps:
the run's own scoring replaced, or named scorings added beside it."""
import fiftyone.core.fields as fof

from ..errors import CamArgumentError
from ..labels import check_gt_field, check_iou_threshold, mask_targets_of
from ..media.mapfiles import load_map
from ..scoring import region_mask, region_scores
from ..scoring.names import REGION_SCORES, TYPES
from .fields import add_fields
from .record import run_config


def scored_name(score, scoring=None):
    """The attribute a region score is stored under: ``mass_inside``, or
    ``mass_inside_<scoring>`` for a named scoring."""
    return score if scoring is None else f"{score}_{scoring}"


def check_scoring_name(name):
    if name is not None and (not isinstance(name, str) or not name.isidentifier() or len(name) > 40):
        raise CamArgumentError(
            "name", f"a scoring's name must be a Python identifier of at most 40 characters "
                    f"(letters, digits, underscores), e.g. 'target_class'; got {name!r}")


def check_score_args(samples, run_key, gt_field, all_objects=True, iou_threshold=0.5, name=None):
    """Checks :func:`score_regions`' arguments as it does, scoring nothing.

    Returns:
        the run's config and the threshold as a float

    Raises:
        CamArgumentError: naming the refused parameter
    """
    config = run_config(samples, run_key)
    check_gt_field(samples, gt_field)
    check_scoring_name(name)
    if getattr(config, "detections_field", None) and not all_objects:
        raise CamArgumentError(
            "all_objects", f"run '{run_key}' explained a detector: each map explains all of a sample's objects, so "
                           f"it is scored against all of them (all_objects=True)")
    return config, check_iou_threshold(iou_threshold)


def score_regions(samples, run_key, gt_field, all_objects=True, iou_threshold=0.5, name=None, progress=None):
    """Adds ``mass_inside``, ``pointing_hit`` and ``iou`` to every Heatmap of an existing run.

    The same scores :func:`cam_core.compute_cams` computes with ``gt_field=``,
    from the stored maps (nothing is recomputed by the model). Without a
    ``name`` they replace the run's own scoring; with one, they are stored
    beside it as ``mass_inside_<name>``, ``pointing_hit_<name>``,
    ``iou_<name>`` and the scoring is listed on the run's config
    (``config.scorings``), so several scorings can be compared
    (``sort_by_score(..., scoring=<name>)``).

    Args:
        samples: the run's dataset, or a view of it (only its samples are scored)
        run_key: a CAM run's key
        gt_field: an ``fo.Detections``, ``fo.Polylines`` or ``fo.Segmentation`` field
        all_objects (True): every object of the sample, whatever each map's
            target class; False: only the objects of each map's target class
        iou_threshold (0.5): relative threshold of the map for ``iou``
        name (None): the scoring's name (an identifier); None replaces the run's own scoring
        progress (None): FiftyOne's progress option

    Returns:
        the number of samples scored (those with at least one of the run's maps)

    Raises:
        CamArgumentError: naming the refused parameter, before anything is written
    """
    config, iou_threshold = check_score_args(samples, run_key, gt_field, all_objects, iou_threshold, name)
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
            label, index = explained_class(heat)
            key = (cam.shape, label, index)
            if key not in cache:  # maps of one sample share their region
                cache[key] = region_mask(gt, cam.shape, label, index, all_objects, mask_targets)
            for score, value in region_scores(cam, cache[key], iou_threshold).items():
                heat[scored_name(score, name)] = value
        n += scored
    _declare(dataset, fields, name)  # the new scores become sidebar filters, also where all are None
    if name is None:
        config.gt_field, config.all_objects, config.iou_threshold = gt_field, bool(all_objects), iou_threshold
    else:
        config.scorings[name] = {"gt_field": gt_field, "all_objects": bool(all_objects), "iou_threshold": iou_threshold}
    dataset.update_run_config(run_key, config)
    return n


def explained_class(heat):
    """``(target_label, target_index)`` of a map, or ``(None, None)`` for a
    detector's map (it explains all of its sample's objects)."""
    if heat.has_field("target_label"):
        return heat.target_label, heat.target_index
    return None, None


def _declare(dataset, fields, name):
    kinds = {bool: fof.BooleanField, float: fof.FloatField}
    add_fields(  # only adds: a field another process saved meanwhile stays
        dataset, {f"{f}.{scored_name(s, name)}": kinds[TYPES.get(s, float)]() for f in fields for s in REGION_SCORES})
