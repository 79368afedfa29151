"""The maps of datasets that no longer exist.

``dataset.delete()`` drops a dataset's samples and runs without running any
run's cleanup, so the PNG files of its CAM runs stay on disk. Every CAM run
records where it writes (its state document, :mod:`cam_core.runs.state`) and
leaves a marker there naming this database and the run
(:mod:`cam_core.runs.owner`), so its files can be found and removed
afterwards, and only its files: other databases may write under the same
folders (every database's default dataset folder is ``~/fiftyone``).
"""
import logging
import os
from dataclasses import dataclass, field

import fiftyone as fo
import fiftyone.core.odm as foo

from ..media.mapdirs import MapFolders
from . import owner, state

logger = logging.getLogger(__name__)


@dataclass
class OrphanedMaps:
    """What :func:`orphaned_maps` found.

    Attributes:
        removable: map files of runs of this database whose dataset is gone
        kept: such files that a sample of this database still references (a
            clone of a deleted dataset keeps its maps)
        unproven: folders holding map files that cannot be told this
            database's: no marker of it (runs recorded before markers
            existed, whose folders may hold other databases' maps too), or
            a field folder that several runs' markers name: never removed;
            check them and delete them yourself if they are yours
    """

    removable: list = field(default_factory=list)
    kept: list = field(default_factory=list)
    unproven: list = field(default_factory=list)


def orphaned_maps():
    """Lists what :func:`remove_orphaned_maps` would remove, and what it leaves.

    Returns:
        an :class:`OrphanedMaps`
    """
    return _sweep(dry_run=True)


def remove_orphaned_maps(dry_run=False):
    """Removes the map files of CAM runs of this database whose dataset was
    deleted, the folders those runs made once empty, and their state documents.

    A file is removed only when the marker its run left in the output folder
    names this database and that run, when no other run's marker names its
    field folder, and when no sample of this database references it.
    Folders no marker of this database proves its own are never touched;
    they are logged (and listed by :func:`orphaned_maps`).

    Args:
        dry_run (False): only list what would be removed

    Returns:
        the list of removed (or, with ``dry_run``, removable) file paths
    """
    return _sweep(dry_run).removable


def _sweep(dry_run):
    found = OrphanedMaps()
    orphans = state.orphaned_states()
    known = {d.get("run_uid") for d in state._collection().find({}, {"run_uid": 1}) if d.get("run_uid")}
    runs = [(d.get("dataset_id"), d.get("run_uid"), d["output_dir"], d.get("fields") or [], d["_id"])
            for d in orphans if d.get("output_dir")]
    runs += _marked_elsewhere(known)
    for dataset_id, uid, output_dir, fields, doc_id in runs:
        removed, kept, proven = owner.remove_run_files(dataset_id, uid, output_dir, fields, dry_run=dry_run,
                                                       orphaned=True)
        found.removable += removed
        found.kept += kept
        left = not proven and _has_maps(output_dir, fields)
        if left:
            found.unproven.append(output_dir)
        if not dry_run and doc_id and not kept and not left:
            state.forget_id(doc_id)  # a run whose files a live dataset still uses stays findable
    if not dry_run:  # the documents of shards and of runs that wrote no file
        for doc in orphans:
            if not doc.get("output_dir"):
                state.forget_id(doc["_id"])
    found.unproven += _legacy_default_folders(found.unproven)
    if found.unproven:
        logger.warning("cam_core: left %d folder(s) of maps that no marker of this database proves its own "
                       "(runs recorded before markers existed, or other databases): %s", len(found.unproven),
                       ", ".join(found.unproven[:10]))
    return found


def _default_root():
    return os.path.join(fo.config.default_dataset_dir, "cam_maps")


def _run_folders():
    """``<default_dataset_dir>/cam_maps/<dataset>/<run key>`` folders."""
    root = _default_root()
    return [os.path.join(root, d, r) for d in _listdir(root) for r in _listdir(os.path.join(root, d))]


def _marked_elsewhere(known):
    """Runs of this database whose dataset is gone and whose state is gone
    too, found by their markers in the default folders."""
    db = owner.database_id()
    live = {str(d["_id"]) for d in foo.get_db_conn().datasets.find({}, {"_id": 1})}
    return [(m["dataset_id"], m["run_uid"], folder, m.get("fields") or [], None)
            for folder in _run_folders() for m in owner.markers(folder)
            if m.get("database") == db and m.get("dataset_id") not in live and m.get("run_uid") not in known]


def _legacy_default_folders(listed):
    """Default folders of datasets whose name no dataset of this database has,
    holding map files but no marker: made before markers existed, maybe by another database."""
    live = {d["name"] for d in foo.get_db_conn().datasets.find({}, {"name": 1})}
    root = _default_root()
    return [f for f in _run_folders()
            if f not in listed and os.path.relpath(f, root).split(os.sep)[0] not in live
            and not owner.markers(f) and _has_maps(f, _listdir(f))]


def _has_maps(output_dir, fields):
    with MapFolders(output_dir, fields, create=False) as folders:
        return any(folders.names(f) for f in folders.fields())


def _listdir(folder):
    try:
        return sorted(n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n)))
    except OSError:
        return []
