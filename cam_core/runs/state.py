"""The live state of every CAM run, in the database, readable by any process.

FiftyOne's run record (config and results) is saved with the dataset's
document and read back from each process's in-memory copy, so it can neither
say "a process is computing this run now" nor be claimed atomically. Each
run therefore also has one document in the ``cam_core_runs`` collection,
``_id = "<dataset id>:<run key>"``:

- inserting it is the claim of the run key (MongoDB's unique ``_id``: of two
  processes that start the same key, exactly one succeeds);
- a later process takes over a claim whose holder is gone by a
  compare-and-swap on the holder's token, so two resumers cannot both win;
- its holder keeps a heartbeat (every :data:`HEARTBEAT_S` seconds, from a
  thread, so a slow batch does not look dead) and adds each batch's counts.

States: ``running``, ``complete``, ``failed`` (with the error) and
``interrupted``: a run stored as running whose holder is gone (a process on
this host that no longer exists, or no heartbeat for :data:`STALE_S` seconds
from another host). Counts and seconds accumulate over a run and all its
continuations, so an interrupted run and its resume add up to the whole.
"""
import datetime
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field

import fiftyone.core.odm as foo
import pymongo.errors

from ..errors import CamArgumentError

COLLECTION = "cam_core_runs"
HEARTBEAT_S = 10.0
STALE_S = 60.0

RUNNING, COMPLETE, FAILED, INTERRUPTED = "running", "complete", "failed", "interrupted"
QUEUED, SHARDED = "queued", "sharded"  # a shard waiting for a worker; a run split into shards


def _collection():
    return foo.get_db_conn()[COLLECTION]


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _doc_id(dataset, run_key):
    return f"{dataset._doc.id}:{run_key}"


@dataclass
class RunStatus:
    """What a run is doing or did, as any process sees it.

    Attributes:
        run_key: the run's key
        state: ``"running"``, ``"complete"``, ``"failed"``, ``"interrupted"``,
            or ``"unknown"`` for a run recorded before run states existed
        error: a failed run's cause, or None
        num_samples: samples that got their maps, over the run and its continuations
        num_skipped / skipped: samples skipped and why (``{"id", "filepath", "kind", "reason"}``)
        seconds: computing time, summed over the run and its continuations
        holder: ``"host:pid"`` of the process that runs (or last ran) it
        started / updated: when it was first claimed / last heard from (UTC)
        output_dir: where its map files are written
        shards: a run queued as several jobs (:func:`cam_core.queue_cams`):
            per shard ``{"shard", "state", "num_samples", "holder", "op_id", "error"}``;
            empty for a run computed by one call
    """

    run_key: str
    state: str
    error: str = None
    num_samples: int = 0
    num_skipped: int = 0
    skipped: list = field(default_factory=list)
    seconds: float = 0.0
    holder: str = None
    started: datetime.datetime = None
    updated: datetime.datetime = None
    output_dir: str = None
    shards: list = field(default_factory=list)


def _alive(doc):
    """Whether the process holding a running claim still exists."""
    if doc.get("state") != RUNNING:
        return False
    owner = doc.get("owner") or {}
    if owner.get("host") == socket.gethostname():
        try:
            os.kill(int(owner["pid"]), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, KeyError, TypeError, ValueError):
            pass  # a process of another user exists; fall back to the heartbeat
    beat = doc.get("heartbeat")
    return beat is not None and (_now() - beat).total_seconds() < STALE_S


def _state_of(doc, run_key):
    state = doc["state"]
    if state == RUNNING and not _alive(doc):
        state = INTERRUPTED
    owner = doc.get("owner") or {}
    skipped = list((doc.get("skipped") or {}).values())
    return RunStatus(
        run_key=run_key, state=state, error=doc.get("error"), num_samples=int(doc.get("num_samples", 0)),
        num_skipped=len(skipped), skipped=skipped, seconds=round(float(doc.get("seconds", 0.0)), 3),
        holder=f"{owner.get('host')}:{owner.get('pid')}" if owner else None, started=doc.get("started"),
        updated=doc.get("heartbeat"), output_dir=doc.get("output_dir"),
    )


def stored_run_keys(dataset):
    """The dataset's run keys as stored now (another process may have added
    some since this process loaded the dataset)."""
    doc = foo.get_db_conn().datasets.find_one({"_id": dataset._doc.id}, {"runs": 1})
    return list((doc or {}).get("runs") or {})


class Claim:
    """This process's hold on a run key: the heartbeat, the per-batch counts,
    the final state. Made by :func:`claim`."""

    def __init__(self, doc_id, token):
        self.doc_id = doc_id
        self.token = token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="cam_core-heartbeat", daemon=True)
        self._thread.start()

    def _filter(self):
        return {"_id": self.doc_id, "owner.token": self.token}

    def _beat(self):
        while not self._stop.wait(HEARTBEAT_S):
            try:
                _collection().update_one(self._filter(), {"$set": {"heartbeat": _now()}})
            except pymongo.errors.PyMongoError:
                pass  # the next beat retries; a dead database fails the run's own writes

    def check_held(self):
        """Raises when the run's state document is no longer this process's
        (the run was deleted, or taken over after this process was thought dead)."""
        if _collection().count_documents(self._filter(), limit=1) == 0:
            raise RuntimeError("the run was deleted or taken over by another process while this one computed it; "
                               "this process stopped before writing more")

    def retry(self, sample_ids):
        """Forgets earlier skips of samples that are tried again."""
        if sample_ids:
            _collection().update_one(self._filter(), {"$unset": {f"skipped.{i}": "" for i in sample_ids}})

    def add(self, num_samples, skipped, seconds):
        """Adds one batch: samples written, skips (``{"id", ...}`` dicts), seconds."""
        update = {"$inc": {"num_samples": num_samples, "seconds": seconds}, "$set": {"heartbeat": _now()}}
        update["$set"].update({f"skipped.{s['id']}": s for s in skipped})
        _collection().update_one(self._filter(), update)

    def finish(self, state, error=None, num_samples=None):
        """Stops the heartbeat and stores the final state (and the counted
        number of samples with maps, when given)."""
        self._stop.set()
        self._thread.join()
        done = {"state": state, "error": error, "heartbeat": _now(), "finished": _now()}
        if num_samples is not None:
            done["num_samples"] = int(num_samples)
        _collection().update_one(self._filter(), {"$set": done})

    def read(self, run_key):
        return _state_of(_collection().find_one({"_id": self.doc_id}), run_key)


def held_by_me(token, now=None):
    """The fields of a state document that this process holds (running, beating now)."""
    return {"owner": {"host": socket.gethostname(), "pid": os.getpid(), "token": token}, "state": RUNNING,
            "heartbeat": now or _now(), "error": None}


def claim(dataset, run_key, mode, output_dir, registered, fields=()):
    """Claims ``run_key`` on ``dataset`` for this process, atomically.

    Args:
        dataset: the run's dataset
        run_key: the key
        mode: ``"fresh"`` (a new run), ``"resume"`` (``skip_existing``) or
            ``"replace"`` (``overwrite``)
        output_dir: where the run writes its maps (recorded for cleanup)
        registered: whether the key is a recorded run (read from the database)
        fields: the run's Heatmap fields (recorded, so the maps of a deleted
            dataset can be found: :func:`cam_core.remove_orphaned_maps`)

    Returns:
        a :class:`Claim`

    Raises:
        CamArgumentError: (``run_key``) when another live process holds the
            key, or a fresh run finds it taken
    """
    coll = _collection()
    doc_id = _doc_id(dataset, run_key)
    token = uuid.uuid4().hex
    now = _now()
    mine = dict(held_by_me(token, now), output_dir=output_dir, fields=list(fields))
    fresh = {"_id": doc_id, "dataset_id": str(dataset._doc.id), "dataset_name": dataset.name, "run_key": run_key,
             "started": now, "num_samples": 0, "seconds": 0.0, "skipped": {}, **mine}
    try:
        coll.insert_one(fresh)
        return Claim(doc_id, token)
    except pymongo.errors.DuplicateKeyError:
        pass
    old = coll.find_one({"_id": doc_id})
    if old is None:  # deleted meanwhile: try once more, atomically
        return claim(dataset, run_key, mode, output_dir, registered, fields)
    if _alive(old):
        owner = old["owner"]
        raise CamArgumentError(
            "run_key",
            f"run '{run_key}' on dataset '{dataset.name}' is being computed now by process {owner['pid']} on "
            f"{owner['host']} (since {old['started']:%Y-%m-%d %H:%M:%S} UTC); wait for it to finish, or choose "
            f"another run_key",
        )
    if mode == "fresh" and registered:
        raise CamArgumentError(
            "run_key",
            f"run key '{run_key}' already exists on dataset '{dataset.name}' (state "
            f"{_state_of(old, run_key).state}): continue it (skip_existing=True), overwrite it (overwrite=True), "
            f"or choose another key",
        )
    if mode != "resume" or not registered:  # a new run on a dead claim: its counts start again
        mine.update({"started": now, "num_samples": 0, "seconds": 0.0, "skipped": {}, "finished": None})
    # compare-and-swap on the dead holder's token: of two takers exactly one matches
    taken = coll.find_one_and_update({"_id": doc_id, "owner.token": old["owner"]["token"]}, {"$set": mine})
    if taken is None:
        return claim(dataset, run_key, mode, output_dir, registered, fields)
    return Claim(doc_id, token)


def check_deletable(dataset, run_key):
    """Refuses to delete a run that a live process is computing."""
    doc = _collection().find_one({"_id": _doc_id(dataset, run_key)})
    if doc is not None and _alive(doc):
        raise CamArgumentError(
            "run_key", f"run '{run_key}' is being computed now by process {doc['owner']['pid']} on "
                       f"{doc['owner']['host']}; stop it before deleting the run")


def forget(dataset, run_key):
    """Removes a run's state document and those of its shards."""
    doc_id = _doc_id(dataset, run_key)
    _collection().delete_many({"$or": [{"_id": doc_id}, {"parent": doc_id}]})


def forget_id(doc_id):
    """Removes one state document by its ``_id``."""
    _collection().delete_one({"_id": doc_id})


def rename(dataset, run_key, new_key):
    """Moves a run's state document (and its shards') to its new key."""
    coll = _collection()
    old_id, new_id = _doc_id(dataset, run_key), _doc_id(dataset, new_key)
    for doc in coll.find({"$or": [{"_id": old_id}, {"parent": old_id}]}):
        old = doc["_id"]
        doc.update({"_id": new_id + old[len(old_id):], "run_key": new_key})
        if "parent" in doc:
            doc["parent"] = new_id
        coll.insert_one(doc)
        coll.delete_one({"_id": old})


def orphaned_states():
    """State documents whose dataset no longer exists: ``[{"_id", "output_dir", ...}]``."""
    live = {str(d["_id"]) for d in foo.get_db_conn().datasets.find({}, {"_id": 1})}
    return [d for d in _collection().find({}, {"skipped": 0}) if d.get("dataset_id") not in live]
