"""The maps of datasets that no longer exist.

``dataset.delete()`` drops a dataset's samples and runs without running any
run's cleanup, so the PNG files of its CAM runs stay on disk. Every CAM run
records where it writes (its state document, :mod:`cam_core.runs.state`),
so they can be found and removed afterwards.
"""
import os

import fiftyone as fo
import fiftyone.core.odm as foo

from ..media.mapfiles import remove_map_files, run_map_files
from . import state


def remove_orphaned_maps(dry_run=False):
    """Removes the map files of CAM runs whose dataset was deleted, and
    their state documents.

    Looks at every run's recorded output folder, and at the default folders
    ``<default_dataset_dir>/cam_maps/<dataset name>`` of datasets that no
    longer exist (runs recorded before run states existed). Only files
    named as cam_core names its maps (``<field>/<sample id>.png``) are removed.

    Args:
        dry_run (False): only list what would be removed

    Returns:
        the list of removed (or, with ``dry_run``, removable) file paths
    """
    found, per_run = [], {}
    orphans = state.orphaned_states()
    for doc in orphans:
        if doc.get("output_dir"):
            per_run[doc["_id"]] = run_map_files(doc["output_dir"], doc.get("fields") or [])
            found += per_run[doc["_id"]]
    live_names = {d["name"] for d in foo.get_db_conn().datasets.find({}, {"name": 1})}
    default_root = os.path.join(fo.config.default_dataset_dir, "cam_maps")
    for name in _listdir(default_root):
        if name in live_names:
            continue
        for run_key in _listdir(os.path.join(default_root, name)):
            run_dir = os.path.join(default_root, name, run_key)
            found += run_map_files(run_dir, _listdir(run_dir))
    kept = _referenced(found)
    found = sorted(set(found) - kept)
    if not dry_run:
        remove_map_files(found)
        for doc in orphans:  # a run whose files a live dataset still uses stays findable
            if not kept & set(per_run.get(doc["_id"], [])):
                state.forget_id(doc["_id"])
    return found


def _referenced(paths):
    """Those of ``paths`` that a Heatmap of a live dataset references (a
    clone of a deleted dataset keeps its maps)."""
    db = foo.get_db_conn()
    used = set()
    for d in db.datasets.find({}, {"sample_collection_name": 1, "sample_fields": 1}):
        heatmaps = [f["name"] for f in d.get("sample_fields", []) if f.get("embedded_doc_type") == _HEATMAP]
        if not heatmaps or not paths:
            continue
        query = {"$or": [{f"{h}.map_path": {"$in": list(paths)}} for h in heatmaps]}
        for doc in db[d["sample_collection_name"]].find(query, {f"{h}.map_path": 1 for h in heatmaps}):
            used.update((doc.get(h) or {}).get("map_path") for h in heatmaps)
    return used


_HEATMAP = "fiftyone.core.labels.Heatmap"


def _listdir(folder):
    try:
        return [n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n))]
    except OSError:
        return []
