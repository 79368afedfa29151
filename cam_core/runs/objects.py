"""A detector run's explained objects as patches, ordered by their own scores:
the boxes found by their context first."""
import logging
import numbers

from fiftyone import ViewField as F

from ..errors import CamArgumentError
from ..scoring.names import DETECTION_SCORES, MASK_SCORES, object_attribute
from .record import run_config
from .results import explained_objects
from .views import run_field

logger = logging.getLogger(__name__)


def detector_run(samples, run_key):
    """The config of a detector run.

    Raises:
        CamArgumentError: (``run_key``) for a run that did not explain a detector
    """
    config = run_config(samples, run_key)
    if not getattr(config, "detections_field", None):
        raise CamArgumentError(
            "run_key", f"run '{run_key}' explained a classifier or segmenter: it has no explained objects; sort its "
                       f"samples with sort_by_score")
    return config


def check_objects_args(samples, run_key, score="inside", field=None, min_value=None, max_value=None, reverse=False,
                       min_confidence=None, label=None, view_name=None):
    """Checks :func:`sort_objects_by_score`' arguments as it does, saving nothing.

    Returns:
        ``(detections field, attribute path)`` sorted by

    Raises:
        CamArgumentError: naming the refused parameter
    """
    config = detector_run(samples, run_key)
    field = run_field(config, run_key, field)
    if score not in DETECTION_SCORES + MASK_SCORES:
        raise CamArgumentError("score", f"unknown object score '{score}'; scores: {', '.join(DETECTION_SCORES)} "
                                        f"(and {', '.join(MASK_SCORES)} for a detector with instance masks)")
    for name, value in (("min_value", min_value), ("max_value", max_value), ("min_confidence", min_confidence)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            raise CamArgumentError(name, f"{name} must be a number or None; got {value!r}")
    if min_value is not None and max_value is not None and min_value > max_value:
        raise CamArgumentError("max_value", f"min_value ({min_value}) is above max_value ({max_value}): no object could match")
    if label is not None and config.classes is not None and str(label) not in config.classes:
        raise CamArgumentError("label", f"'{label}' is not one of the run's classes: {', '.join(config.classes[:20])}")
    if view_name and samples._root_dataset.has_saved_view(view_name):
        raise CamArgumentError("view_name", f"a saved view '{view_name}' exists: choose another name")
    return config.detections_field, object_attribute(run_key, field, score)


def sort_objects_by_score(samples, run_key, score="inside", field=None, min_value=None, max_value=None, reverse=False,
                          min_confidence=None, label=None, view_name=None):
    """A detector run's explained objects as patches, sorted by one of their own scores.

    For example, confident boxes that their own map explains least (found by
    their context)::

        cam_core.sort_objects_by_score(dataset, "cam", "inside", min_confidence=0.5)

    Args:
        samples: a dataset or view holding the run
        run_key: a detector run's key
        score ("inside"): ``inside``, ``on_others``, ``background`` or
            ``peak_inside`` (see :func:`cam_core.compute_cams`)
        field (None): the Heatmap field whose maps scored the objects; default the run's first
        min_value (None): keep objects whose score is at least this
        max_value (None): keep objects whose score is at most this
        reverse (False): highest first
        min_confidence (None): keep objects the detector scored at least this
        label (None): keep objects of this class
        view_name (None): also save the view on the dataset under this new name

    Returns:
        a patches view (one patch per explained object) without the objects
        that have no such score (no output box matched them, or their map
        is empty); how many were left out is logged

    Raises:
        CamArgumentError: naming the refused parameter, before anything is saved
    """
    detections, attribute = check_objects_args(samples, run_key, score, field, min_value, max_value, reverse,
                                               min_confidence, label, view_name)
    keep = F(attribute) != None  # noqa: E711 (a MongoDB expression)
    missing = samples.count(f"{detections}.detections") - samples.filter_labels(detections, keep).count(
        f"{detections}.detections")
    if missing:
        logger.warning("sort_objects_by_score: %s", _MISSING.format(n=missing, score=score))
    for bound, test in ((min_value, lambda v: F(attribute) >= v), (max_value, lambda v: F(attribute) <= v),
                        (min_confidence, lambda v: F("confidence") >= v), (label, lambda v: F("label") == str(v))):
        if bound is not None:
            keep &= test(bound)
    view = samples.filter_labels(detections, keep).to_patches(detections)
    view = view.sort_by([(f"{detections}.{attribute}", -1 if reverse else 1), ("_id", 1)])
    if not len(view):
        logger.warning("sort_objects_by_score: no patch: %s", why_no_patches(samples, run_key, score, field))
    if view_name:
        samples._root_dataset.save_view(view_name, view, description=f"objects of CAM run '{run_key}' by {score}")
    return view


_MISSING = "{n} object(s) have no {score} and are left out: no output box matched them, or their map is empty"


def why_no_patches(samples, run_key, score="inside", field=None):
    """Why :func:`sort_objects_by_score` gives no patch, in words: the run
    explains no object in ``samples`` (and why its samples were skipped),
    its objects have no such score, or the bounds and filters left none."""
    from ..skips import skipped_reasons
    from .record import NOTHING_EXPLAINED
    from .shards import run_status

    config = detector_run(samples, run_key)
    explained = explained_objects(samples, config)
    if not explained:
        skipped = skipped_reasons(run_status(samples, run_key).skipped)
        why = "; ".join(f"{n} sample(s) skipped: {kind}" for kind, n in skipped.most_common())
        return f"run '{run_key}' explains no object in these samples: {NOTHING_EXPLAINED}" + (f" ({why})" if why else "")
    attribute = object_attribute(run_key, run_field(config, run_key, field), score)
    detections = config.detections_field
    if not samples.filter_labels(detections, F(attribute) != None).count(f"{detections}.detections"):  # noqa: E711
        return _MISSING.format(n=explained, score=score)
    return f"none of the run's {explained} explained object(s) is within the bounds and filters chosen"
