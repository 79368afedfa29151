"""A run's scores counted in the database: the histogram of one score of one
map field, and the samples within a range of its bins (what a chart's
selection filters to). Counts are MongoDB aggregations (``bounds``,
``histogram_values``, ``count_values``), never a loop over samples."""
import numbers

from fiftyone import ViewField as F

from ..errors import CamArgumentError
from .record import list_cam_runs, run_config
from .views import _check_carried, check_score, run_field

BOOLEAN_SCORES = ("pointing_hit", "empty")


def latest_run(samples):
    """The key of the most recently started CAM run of the collection, or None."""
    keys = list_cam_runs(samples)
    if not keys:
        return None
    return max(keys, key=lambda k: (samples.get_run_info(k).timestamp, k))


def _path(samples, run_key, score, field):
    field = run_field(run_config(samples, run_key), run_key, field)
    if score in BOOLEAN_SCORES and f"{field}.{score}" in samples.get_field_schema(flat=True):
        return field, f"{field}.{score}"
    check_score(score)
    _check_carried(samples, field, score)
    return field, f"{field}.{score}"


def score_histogram(samples, run_key, score="spread", field=None, bins=20):
    """The histogram of one score of one map field, counted by the database.

    Args:
        samples: a dataset or view holding the run
        run_key: a CAM run's key
        score ("spread"): a score the maps carry (:data:`cam_core.types.SCORES`), or ``"empty"``
        field (None): one of the run's Heatmap fields; default its first
        bins (20): the number of bins, spanning the score's range in ``samples``

    Returns:
        a dict: ``field``, ``score``, ``kind`` (``"numeric"``, or
        ``"boolean"`` for ``pointing_hit`` / ``empty``), ``counts`` per bin,
        ``edges`` (numeric: ``len(counts) + 1`` increasing edges, each bin
        ``[lower, upper)`` as FiftyOne's ``histogram_values``) or ``values``
        (boolean: ``[False, True]``), ``missing`` (samples with no value)

    Raises:
        CamArgumentError: naming the refused parameter
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 200:
        raise CamArgumentError("bins", f"bins must be an integer from 1 to 200; got {bins!r}")
    field, path = _path(samples, run_key, score, field)
    out = {"field": field, "score": score}
    if score in BOOLEAN_SCORES:
        counts = samples.count_values(path)
        out.update(kind="boolean", values=[False, True], counts=[counts.get(False, 0), counts.get(True, 0)])
        out["missing"] = counts.get(None, 0)
        return out
    lo, hi = samples.bounds(path, safe=True)
    if lo is None:
        out.update(kind="numeric", counts=[], edges=[], missing=_missing(samples, path))
        return out
    # as histogram_values' own edges: the top one a hair above the maximum, so it is inside the last bin
    counts, edges, _ = samples.histogram_values(path, bins=bins, range=[float(lo), float(hi) + 1e-6])
    out.update(kind="numeric", counts=[int(c) for c in counts], edges=[float(e) for e in edges],
               missing=_missing(samples, path))
    return out


def _missing(samples, path):
    return samples.match(F(path) == None).count()  # noqa: E711 (a MongoDB expression)


def score_view(samples, run_key, score="spread", field=None, min_value=None, max_value=None, value=None):
    """The samples whose score lies in ``[min_value, max_value)`` (the bins
    of :func:`score_histogram` from one edge to another), or equals ``value``
    (a boolean score).

    Args:
        samples: a dataset or view (as for :func:`score_histogram`)
        run_key: the run's key
        score ("spread"): the score's name
        field (None): the map field (default: the run's first)
        min_value (None): the range's lower end (included); None leaves it open
        max_value (None): the range's upper end (excluded); None leaves it open
        value (None): a boolean score's value

    Returns:
        a view of ``samples``; ``.count()`` is the sum of the bins' counts

    Raises:
        CamArgumentError: naming the refused parameter
    """
    field, path = _path(samples, run_key, score, field)
    if score in BOOLEAN_SCORES:
        if not isinstance(value, bool):
            raise CamArgumentError("value", f"{score} is true or false: pass value=True or value=False; got {value!r}")
        return samples.match(F(path) == value)
    for name, v in (("min_value", min_value), ("max_value", max_value)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real)):
            raise CamArgumentError(name, f"{name} must be a number or None; got {v!r}")
    if min_value is not None and max_value is not None and min_value >= max_value:
        raise CamArgumentError("max_value", f"the range [{min_value}, {max_value}) holds no value: max_value must be "
                                            f"above min_value")
    expr = F(path) != None  # noqa: E711 (a MongoDB expression)
    if min_value is not None:
        expr = expr & (F(path) >= float(min_value))
    if max_value is not None:
        expr = expr & (F(path) < float(max_value))
    return samples.match(expr)  # one stage: an App panel replaces it on the next selection
