"""Which map files are this database's to delete.

Every FiftyOne database has ``~/fiftyone`` as its default dataset folder, so
several databases can write maps under one folder, and several runs can share
one output folder. A run therefore leaves a marker in its output folder when
it opens it, ``.cam_core-run-<run id>.json``: the database (an identity stored
once in it, :func:`database_id`), the dataset, the run, its fields and
whether the run created the folder. Map files are deleted (``delete_run``,
:func:`cam_core.remove_orphaned_maps`, a continued run's sweep of what a crash
left) only where a marker of this database and run proves them the run's,
only from field folders no other marker names, and never while a sample of
this database references them. What no marker proves (runs recorded before
markers existed, other databases) is left alone.
"""
import datetime
import json
import os
import uuid

import fiftyone.core.odm as foo
import pymongo
import pymongo.errors

from ..media.mapdirs import MapFolders
from . import state

IDENTITY = "cam_core_database"
PREFIX, SUFFIX = ".cam_core-run-", ".json"


def database_id():
    """This database's identity: a random id stored once in it (in
    ``cam_core_database``), the same for every process that uses it."""
    coll = foo.get_db_conn()[IDENTITY]
    for _ in range(3):  # two first callers: one insert wins, the other reads it
        try:
            doc = coll.find_one_and_update(
                {"_id": "identity"}, {"$setOnInsert": {"id": uuid.uuid4().hex, "created": datetime.datetime.utcnow()}},
                upsert=True, return_document=pymongo.ReturnDocument.AFTER)
            return doc["id"]
        except pymongo.errors.DuplicateKeyError:
            continue
    return coll.find_one({"_id": "identity"})["id"]


def run_uid(dataset, run_key, create=True):
    """The run's id, kept in its state document (it follows a rename); None
    when the run has no state or no id and ``create`` is False."""
    coll, doc_id = state._collection(), state._doc_id(dataset, run_key)
    if create:
        coll.update_one({"_id": doc_id, "run_uid": {"$exists": False}}, {"$set": {"run_uid": uuid.uuid4().hex}})
    doc = coll.find_one({"_id": doc_id}, {"run_uid": 1})
    return (doc or {}).get("run_uid")


def marker_name(uid):
    return f"{PREFIX}{uid}{SUFFIX}"


def mark(dataset, run_key, output_dir, fields, created):
    """Leaves the run's marker in ``output_dir``; ``created``: whether this
    run made the folder. A continuation keeps the marker there (adding
    field folders it did not list, as after a rename)."""
    uid = run_uid(dataset, run_key)
    created = created or not os.path.isdir(output_dir)
    with MapFolders(output_dir, []) as folders:
        old = _parse(folders.read(marker_name(uid)))
        if old and set(fields) <= set(old.get("fields") or []):
            return
        marker = old or {"database": database_id(), "dataset_id": str(dataset._doc.id), "run_uid": uid,
                         "created_output_dir": created, "created": datetime.datetime.utcnow().isoformat()}
        marker.update(dataset_name=dataset.name, run_key=run_key,
                      fields=list(dict.fromkeys(list(marker.get("fields") or []) + list(fields))))
        folders.write(None, marker_name(uid), json.dumps(marker, indent=1).encode())


def _parse(data):
    try:
        return dict(json.loads(data)) if data else None
    except (ValueError, TypeError):
        return None


def markers(output_dir):
    """The markers in ``output_dir``: ``[dict]`` (unreadable ones left out)."""
    found = []
    with MapFolders(output_dir, [], create=False) as folders:
        for name in folders.listing():
            marker = _parse(folders.read(name)) if name.startswith(PREFIX) and name.endswith(SUFFIX) else None
            if marker:
                found.append(marker)
    return found


def ownership(dataset_id, uid, output_dir, fields):
    """``(marker, exclusive)``: the run's own marker in ``output_dir`` when it
    names this database and dataset (else None), and those of ``fields`` (and
    of the fields the marker lists) whose folders no other marker names."""
    found = markers(output_dir)
    db = database_id() if uid else None
    mine = next((m for m in found if uid and m.get("run_uid") == uid and m.get("database") == db
                 and m.get("dataset_id") == str(dataset_id)), None)
    fields = list(dict.fromkeys(list(fields) + list((mine or {}).get("fields") or [])))
    others = {f for m in found if m is not mine for f in m.get("fields") or []}
    return mine, [f for f in fields if f not in others]


def sweepable(dataset, run_key, output_dir, fields):
    """The field folders a continued run may sweep of unreferenced files: none unless its marker proves them its own."""
    mine, exclusive = ownership(dataset._doc.id, run_uid(dataset, run_key, create=False), output_dir, fields)
    return exclusive if mine else []


def remove_run_files(dataset_id, uid, output_dir, fields, paths=(), dry_run=False, orphaned=False):
    """Deletes what a run wrote under ``output_dir``: ``paths`` (files its
    samples referenced), and every map file of its field folders when its
    marker proves them its own (no other marker names them); never a file a
    sample of this database references. Then its empty field folders, its
    marker, and its output folder if the run created it and it is empty;
    nothing above. An ``orphaned`` run (its dataset deleted) keeps its
    marker while some of its files are kept or lie in folders it shares.

    Returns:
        ``(removed, kept, proven)``: the paths removed (with ``dry_run``:
        removable), those kept because a sample references them, and whether
        its marker proved every one of its folders its own
    """
    paths = [p for p in paths if p]
    # its folders: as recorded, as its marker lists them, and those its files lie in (a renamed run's)
    fields = list(fields) + [os.path.basename(os.path.dirname(p)) for p in paths
                             if os.path.dirname(os.path.dirname(p)) == output_dir]
    mine, exclusive = ownership(dataset_id, uid, output_dir, fields)
    fields = list(dict.fromkeys(fields + list((mine or {}).get("fields") or [])))
    proven = mine is not None and set(exclusive) >= set(fields)
    with MapFolders(output_dir, fields, create=False) as folders:
        found = set(paths)
        if mine:
            found |= {folders.path(f, n) for f in exclusive if f in folders.fields() for n in folders.names(f)}
        kept = referenced(found)
        doomed = sorted(found - kept)
        if dry_run:
            return doomed, sorted(kept), proven
        removed = folders.remove(doomed)
        done = mine is not None and not (orphaned and (kept or not proven))
        if mine:
            folders.remove_empty(exclusive)  # its field folders once empty (not one another run names)
        if done:
            folders.discard(None, marker_name(uid))
    if done and mine.get("created_output_dir"):
        try:
            os.rmdir(output_dir)  # only if empty; a link is not followed
        except OSError:
            pass
    return removed, sorted(kept), proven


_HEATMAP = "fiftyone.core.labels.Heatmap"


def referenced(paths):
    """Those of ``paths`` that a Heatmap of a dataset of this database references."""
    db = foo.get_db_conn()
    used, paths = set(), list(paths)
    if not paths:
        return used
    for d in db.datasets.find({}, {"sample_collection_name": 1, "sample_fields": 1}):
        heatmaps = [f["name"] for f in d.get("sample_fields", []) if f.get("embedded_doc_type") == _HEATMAP]
        if not heatmaps:
            continue
        query = {"$or": [{f"{h}.map_path": {"$in": paths}} for h in heatmaps]}
        for doc in db[d["sample_collection_name"]].find(query, {f"{h}.map_path": 1 for h in heatmaps}):
            used.update((doc.get(h) or {}).get("map_path") for h in heatmaps)
    return used & set(paths)
