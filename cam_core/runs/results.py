"""A run's results (:class:`cam_core.runs.CamRunResults`): saved from its
live state, and repaired when a process died while saving them.

FiftyOne saves results in two steps (the results into GridFS, then the run
document's reference to them; with ``overwrite`` the old results are deleted
first), so a process killed in between leaves no results, or a reference to
deleted ones that ``load_run_results`` fails on (``AttributeError``). A run
is therefore marked complete only after its results are saved
(:func:`cam_core.compute.runner.close_run`), and a run that reads complete
without readable results (a sharded run's last worker killed while saving,
or a run of an earlier version) gets them from its state the next time its
status is read (:func:`repair`).
"""
import logging

import fiftyone.core.odm as foo
import fiftyone.core.runs as fors

from . import state
from .record import CamRunResults

logger = logging.getLogger(__name__)

OK, MISSING, DANGLING = "ok", "missing", "dangling"


def save_results(dataset, run_key, done, fields=None):
    """Saves a :class:`cam_core.runs.CamRunResults` from a run's status
    (``done``: a :class:`cam_core.types.RunStatus`) and logs its summary; ``fields``
    default to the run's Heatmap fields."""
    dataset.reload()  # the run record as stored (another process may have saved results)
    config = dataset.get_run_info(run_key).config
    results = CamRunResults(
        dataset, config, run_key, num_samples=done.num_samples, num_skipped=done.num_skipped, skipped=done.skipped,
        fields=list(config.fields) if fields is None else fields, seconds=done.seconds,
        num_objects=explained_objects(dataset, config),
    )
    dataset.save_run_results(run_key, results, overwrite=True)
    # a detector run that explains no object is said loudly
    (logger.warning if results.explains_nothing() else logger.info)("cam_core: %s", results.summary())
    return results


def explained_objects(samples, config):
    """How many objects a run's maps explain (those matched to a box of the
    detector, which have a confidence), over ``samples``; None for a run
    that did not explain a detector."""
    field = getattr(config, "detections_field", None)
    if not field or field not in samples.get_field_schema():
        return None if not field else 0
    return samples.count(f"{field}.detections.confidence")


def _run_doc(dataset, run_key):
    db = foo.get_db_conn()
    runs = (db.datasets.find_one({"_id": dataset._doc.id}, {"runs": 1}) or {}).get("runs") or {}
    return db.runs.find_one({"_id": runs[run_key]}, {"results": 1}) if run_key in runs else None


def results_state(dataset, run_key):
    """``"ok"``, ``"missing"`` (none saved) or ``"dangling"`` (the run
    references results that were deleted), read from the database; None
    when the dataset has no such run."""
    doc = _run_doc(dataset, run_key)
    if doc is None:
        return None
    if doc.get("results") is None:
        return MISSING
    files = foo.get_db_conn()["fs.files"]  # FiftyOne's GridFS bucket of run results
    return OK if files.count_documents({"_id": doc["results"]}, limit=1) else DANGLING


def repair(dataset, run_key, status):
    """Makes a run's results readable: a reference to deleted results is
    dropped (``load_run_results`` then returns None instead of failing), and a
    complete run without results gets them from ``status`` (its
    :class:`cam_core.types.RunStatus`).

    Returns:
        whether anything was repaired
    """
    found = results_state(dataset, run_key)
    if found == DANGLING:
        doc = _run_doc(dataset, run_key)
        foo.get_db_conn().runs.update_one({"_id": doc["_id"], "results": doc.get("results")},
                                          {"$set": {"results": None}})
        getattr(dataset, fors.Run._results_cache_field(), {}).pop(run_key, None)  # this process's copy too
    if found in (MISSING, DANGLING) and status.state == state.COMPLETE:
        logger.info("cam_core: run '%s' was complete without readable results (its process died while saving "
                    "them); saving them from its state", run_key)
        save_results(dataset, run_key, status)
    return found in (MISSING, DANGLING)
