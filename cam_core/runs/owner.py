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
    """Leaves the run's marker in ``output_dir`` (a continuation keeps the
    one there); ``created``: whether this run made the folder."""
    uid = run_uid(dataset, run_key)
    created = created or not os.path.isdir(output_dir)
    with MapFolders(output_dir, []) as folders:
        if folders.read(marker_name(uid)) is None:
            marker = {"database": database_id(), "dataset_id": str(dataset._doc.id), "dataset_name": dataset.name,
                      "run_key": run_key, "run_uid": uid, "fields": list(fields), "created_output_dir": created,
                      "created": datetime.datetime.utcnow().isoformat()}
            folders.write(None, marker_name(uid), json.dumps(marker, indent=1).encode())


def markers(output_dir):
    """The markers in ``output_dir``: ``[dict]`` (unreadable ones left out)."""
    found = []
    with MapFolders(output_dir, [], create=False) as folders:
        for name in folders.listing():
            if name.startswith(PREFIX) and name.endswith(SUFFIX):
                try:
                    found.append(dict(json.loads(folders.read(name) or b"")))
                except (ValueError, TypeError):
                    pass
    return found


def ownership(dataset_id, uid, output_dir, fields):
    """``(marker, exclusive)``: the run's own marker in ``output_dir`` when it
    names this database and dataset (else None), and those of ``fields``
    whose folders no other marker names."""
    found = markers(output_dir)
    db = database_id() if uid else None
    mine = next((m for m in found if uid and m.get("run_uid") == uid and m.get("database") == db
                 and m.get("dataset_id") == str(dataset_id)), None)
    others = {f for m in found if m is not mine for f in m.get("fields") or []}
    return mine, [f for f in fields if f not in others]


def sweepable(dataset, run_key, output_dir, fields):
    """The field folders a continued run may sweep of unreferenced files: none unless its marker proves them its own."""
    mine, exclusive = ownership(dataset._doc.id, run_uid(dataset, run_key, create=False), output_dir, fields)
    return exclusive if mine else []


def remove_run_files(dataset_id, uid, output_dir, fields, paths=(), dry_run=False):
    """Deletes what a run wrote under ``output_dir``: ``paths`` (files its
    samples referenced), and every map file of its field folders when its
    marker proves them its own; no file a sample of this database references.
    Then its empty field folders, and, when nothing was kept, its marker and
    its output folder if the run created it and it is empty. Nothing above.

    Returns:
        ``(removed, kept, proven)``: the paths removed (with ``dry_run``: removable),
        the paths kept because a sample references them, and whether a marker proved the folders the run's
    """
    mine, exclusive = ownership(dataset_id, uid, output_dir, fields)
    with MapFolders(output_dir, fields, create=False) as folders:
        found = {p for p in paths if p}
        if mine:
            found |= {folders.path(f, n) for f in exclusive if f in folders.fields() for n in folders.names(f)}
        kept = referenced(found)
        doomed = sorted(found - kept)
        if dry_run:
            return doomed, sorted(kept), mine is not None
        removed = folders.remove(doomed)
        if mine:  # its field folders once empty (not one another run names), and its marker
            folders.remove_empty(exclusive)
            if not kept:
                folders.discard(None, marker_name(uid))
    if mine and not kept and mine.get("created_output_dir"):
        try:
            os.rmdir(output_dir)  # only if empty; a link is not followed
        except OSError:
            pass
    return removed, sorted(kept), mine is not None


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
