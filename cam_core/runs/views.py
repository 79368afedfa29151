"""Views of a run's samples ordered by a heatmap score."""
import logging
import numbers

from fiftyone import ViewField as F

from ..errors import CamArgumentError
from ..labels import check_classification_field
from ..scoring.names import EMPTY, REGION_SCORES, SCORES
from .record import run_config
from .rescore import scored_name

logger = logging.getLogger(__name__)


def run_field(config, run_key, field):
    """One of a run's Heatmap fields, or of the explanations saved on it
    (None: the run's first field).

    Raises:
        CamArgumentError: (``field``) for a field that is not the run's
    """
    fields = list(config.fields) + list(getattr(config, "explanations", None) or {})
    field = field or fields[0]
    if field not in fields:
        raise CamArgumentError("field", f"'{field}' is not a field of run '{run_key}'; its fields: {', '.join(fields)}")
    return field


def map_scores(samples, field):
    """The scores the maps of ``field`` carry (declared, so filterable), in :data:`cam_core.types.SCORES` order."""
    schema = samples.get_field_schema(flat=True)
    return [s for s in SCORES if f"{field}.{s}" in schema]


def check_score(score):
    """Refuses a name that is not one of :data:`cam_core.types.SCORES`."""
    if score not in SCORES:
        raise CamArgumentError("score", f"unknown score '{score}'; scores: {', '.join(SCORES)}")


def _check_carried(samples, field, score, scoring=None, param="score"):
    if scoring is not None and score in REGION_SCORES:
        if f"{field}.{scored_name(score, scoring)}" not in samples.get_field_schema(flat=True):
            raise CamArgumentError(param, f"maps of '{field}' have no score '{score}' of scoring '{scoring}'")
        return
    present = map_scores(samples, field)
    if score not in present:
        hint = "" if REGION_SCORES[0] in present else (
            f" ({', '.join(REGION_SCORES)} come from scoring the run against objects)")
        raise CamArgumentError(
            param, f"maps of '{field}' have no score '{score}'; their scores: {', '.join(present) or 'none'}{hint}")


def _check_bounds(min_value, max_value):
    for name, value in (("min_value", min_value), ("max_value", max_value)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            raise CamArgumentError(name, f"{name} must be a number or None; got {value!r}")
    if min_value is not None and max_value is not None and min_value > max_value:
        raise CamArgumentError(
            "max_value",
            f"the lower bound min_value ({min_value}) is above the upper bound max_value ({max_value}): "
            f"no sample could match",
        )


def check_sort_args(samples, run_key, score="mass_inside", field=None, min_value=None, max_value=None,
                    reverse=False, correct_field=None, view_name=None, then_by=None, scoring=None):
    """Checks :func:`sort_by_score`' arguments as it does, saving nothing.

    Returns:
        the Heatmap field sorted by (the run's first when ``field`` is None)

    Raises:
        CamArgumentError: naming the refused parameter
    """
    config = run_config(samples, run_key)
    field = run_field(config, run_key, field)
    if scoring is not None and scoring not in config.scorings:
        named = ", ".join(config.scorings) or "none (add one with score_regions(..., name=...))"
        raise CamArgumentError("scoring", f"run '{run_key}' has no scoring '{scoring}'; its named scorings: {named}")
    check_score(score)
    _check_carried(samples, field, score, scoring)
    if then_by is not None:
        if then_by not in SCORES:
            raise CamArgumentError("then_by", f"unknown score '{then_by}'; scores: {', '.join(SCORES)}")
        _check_carried(samples, field, then_by, scoring, param="then_by")
    _check_bounds(min_value, max_value)
    if correct_field is not None:
        check_classification_field(samples, correct_field, "correct_field")
    if view_name and samples._root_dataset.has_saved_view(view_name):
        raise CamArgumentError("view_name", f"a saved view '{view_name}' exists: choose another name")
    return field


def sort_by_score(samples, run_key, score="mass_inside", field=None, min_value=None, max_value=None,
                  reverse=False, correct_field=None, view_name=None, then_by=None, scoring=None):
    """Samples of a run sorted by one score of one Heatmap field.

    For example, correct predictions where the model looked outside the
    object, least on-object first::

        cam_core.sort_by_score(dataset, "cam", "mass_inside", max_value=0.3, correct_field="ground_truth")

    Args:
        samples: a dataset or view holding the run
        run_key: a CAM run's key
        score ("mass_inside"): a score the maps carry (see :data:`cam_core.types.SCORES`)
        field (None): one of the run's Heatmap fields; default its first
        min_value (None): keep samples whose score is at least this
        max_value (None): keep samples whose score is at most this
        reverse (False): highest first
        correct_field (None): an ``fo.Classification`` field: keep samples whose
            map's ``target_label`` equals its label (correct predictions when the
            run's target is the prediction)
        view_name (None): also save the view on the dataset under this new name
        then_by (None): a second score that orders samples tied on ``score``
            (``pointing_hit`` is true or false for many); ties left are in id order
        scoring (None): a named scoring (:func:`cam_core.score_regions` with
            ``name=``) whose region scores to sort by; None: the run's own

    Returns:
        a ``DatasetView`` without the samples that have no such score; how
        many were left out and why is logged (logger ``cam_core.runs.views``,
        WARNING) and given by :func:`missing_scores`

    Raises:
        CamArgumentError: naming the refused parameter, before anything is saved
    """
    field = check_sort_args(samples, run_key, score, field, min_value, max_value, reverse, correct_field, view_name,
                            then_by, scoring)
    path = _path(field, score, scoring)
    missing, why = missing_scores(samples, run_key, score, field, scoring)
    if missing:
        logger.warning("sort_by_score: %d sample(s) have no %s and are left out: %s", missing, score, why)
    view = samples.match(F(path) != None)  # noqa: E711 (a MongoDB expression, not a Python test)
    if min_value is not None:
        view = view.match(F(path) >= min_value)
    if max_value is not None:
        view = view.match(F(path) <= max_value)
    if correct_field is not None:
        view = view.match(F(f"{field}.target_label") == F(f"{correct_field}.label"))
    order = -1 if reverse else 1
    keys = [(path, order)] + ([(_path(field, then_by, scoring), order)] if then_by else []) + [("_id", 1)]
    view = view.sort_by(keys)
    if view_name:
        samples._root_dataset.save_view(view_name, view, description=f"CAM run '{run_key}' sorted by {score}")
    return view


def _path(field, score, scoring):
    return f"{field}.{scored_name(score, scoring) if score in REGION_SCORES else score}"


def missing_scores(samples, run_key, score="mass_inside", field=None, scoring=None):
    """How many samples :func:`sort_by_score` leaves out for a missing score, and why.

    Returns:
        ``(count, reason)``: the samples without the map, or whose map has
        no value for the score, and a sentence saying how many of them have
        no map (skipped, or not computed), an empty map (no mass: nothing
        explained) or no value for another reason (e.g. no object to score against)
    """
    config = run_config(samples, run_key)
    field = run_field(config, run_key, field)
    path = _path(field, score, scoring)
    lacking = samples.match(F(path) == None)  # noqa: E711 (a MongoDB expression)
    count = lacking.count()
    if not count:
        return 0, f"every sample has a {score}"
    no_map = lacking.match(F(field) == None).count()  # noqa: E711
    empty = lacking.match(F(f"{field}.{EMPTY}") == True).count()  # noqa: E712
    parts = [f"{no_map} have no map (skipped, or not computed)" if no_map else None,
             f"{empty} have an empty map (no mass: it explains nothing)" if empty else None]
    other = count - no_map - empty
    if other:
        if score in REGION_SCORES:
            opts = config.scorings.get(scoring) if scoring else {"gt_field": config.gt_field,
                                                                 "all_objects": config.all_objects}
            whose = ("the sample has no object" if opts.get("all_objects") else
                     "the sample has no object of the map's target class (score with all_objects=True to compare "
                     "with every object whatever the prediction)")
            parts.append(f"{other} have no {score}: {whose} in '{opts.get('gt_field')}'")
        else:
            parts.append(f"{other} have no {score}")
    return count, "; ".join(p for p in parts if p)
