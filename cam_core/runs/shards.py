"""The shards of a run queued as several delegated jobs
(:func:`cam_core.queue_cams`), and the status of any run.

A sharded run's state document (:mod:`cam_core.runs.state`) holds the
arguments every shard is computed with; each shard has its own document
(``<run id>/shard<i>``) with the bounds of its sample ids, its state
(``queued`` until a worker claims it), its holder, heartbeat and counts.
A worker claims a shard as a run is claimed: atomically, taking over a dead
holder's claim by a compare-and-swap, so two workers on one shard cannot both
compute it. The run's status sums its shards.
"""
import uuid

from ..errors import CamArgumentError
from . import results
from . import state as st


def shard_doc_id(dataset, run_key, shard):
    return f"{st._doc_id(dataset, run_key)}/shard{shard}"


def create(dataset, run_key, bounds, arguments):
    """Records the shards of a run whose key this process holds:
    ``bounds`` is a list of (first id, last id) per shard."""
    coll = st._collection()
    parent = st._doc_id(dataset, run_key)
    coll.update_one({"_id": parent}, {"$set": {"num_shards": len(bounds), "arguments": arguments}})
    coll.insert_many([
        {"_id": shard_doc_id(dataset, run_key, i), "parent": parent, "dataset_id": str(dataset._doc.id),
         "run_key": run_key, "shard": i, "lo": lo, "hi": hi, "state": st.QUEUED, "owner": None,
         "num_samples": 0, "seconds": 0.0, "skipped": {}, "op_id": None, "error": None}
        for i, (lo, hi) in enumerate(bounds)
    ])


def set_op(dataset, run_key, shard, op_id):
    st._collection().update_one({"_id": shard_doc_id(dataset, run_key, shard)}, {"$set": {"op_id": str(op_id)}})


def run_doc(dataset, run_key):
    """A run's state document, or None."""
    return st._collection().find_one({"_id": st._doc_id(dataset, run_key)})


def shard_docs(dataset, run_key):
    docs = st._collection().find({"parent": st._doc_id(dataset, run_key)}, {"skipped": 0})
    return sorted(docs, key=lambda d: d["shard"])


def shard_doc(dataset, run_key, shard):
    return st._collection().find_one({"_id": shard_doc_id(dataset, run_key, shard)})


def claim_shard(dataset, run_key, shard):
    """Claims one shard for this process.

    Returns:
        a :class:`cam_core.runs.state.Claim`, or None when the shard is complete

    Raises:
        CamArgumentError: (``run_key``) when the shard does not exist or a live
            process holds it
    """
    coll = st._collection()
    doc_id = shard_doc_id(dataset, run_key, shard)
    doc = coll.find_one({"_id": doc_id})
    if doc is None:
        raise CamArgumentError("run_key", f"run '{run_key}' on dataset '{dataset.name}' has no shard {shard}")
    if doc["state"] == st.COMPLETE:
        return None
    if st._alive(doc):
        owner = doc["owner"]
        raise CamArgumentError(
            "run_key", f"shard {shard} of run '{run_key}' is being computed now by process {owner['pid']} on "
                       f"{owner['host']}")
    token = uuid.uuid4().hex
    if coll.find_one_and_update({"_id": doc_id, **_held(doc)}, {"$set": st.held_by_me(token)}) is None:
        raise CamArgumentError("run_key", f"shard {shard} of run '{run_key}' was claimed by another process just now")
    return st.Claim(doc_id, token)


def requeue(dataset, run_key, shard):
    """Puts a shard whose holder is gone (or which failed) back in the queue.

    Returns:
        True when it was reset (False: it is complete, queued or alive)
    """
    doc = shard_doc(dataset, run_key, shard)
    if doc is None or doc["state"] in (st.COMPLETE,) or st._alive(doc):
        return False
    reset = {"owner": None, "state": st.QUEUED, "error": None, "op_id": None}
    return st._collection().update_one({"_id": doc["_id"], **_held(doc)}, {"$set": reset}).modified_count == 1


def _held(doc):
    """A filter matching ``doc`` only while its holder is unchanged (the compare of a compare-and-swap)."""
    return {"owner.token": doc["owner"]["token"]} if doc.get("owner") else {"owner": None}


def shard_state(doc):
    """A shard's state as readers see it (a running shard whose holder is gone: interrupted)."""
    if doc["state"] == st.RUNNING and not st._alive(doc):
        return st.INTERRUPTED
    return doc["state"]


def aggregate(doc, run_key):
    """The :class:`cam_core.runs.state.RunStatus` of a sharded run: the sum of its shards.

    Its state is the one that asks most of the user: ``interrupted`` while
    any shard's worker is gone (resume the run), else ``failed`` while any
    shard failed (resume it once the cause is fixed), else ``running``,
    ``queued``, ``complete``. Its ``error`` names those shards and says what to do.
    """
    docs = list(st._collection().find({"parent": doc["_id"]}))
    docs.sort(key=lambda d: d["shard"])
    states = [shard_state(d) for d in docs]
    for candidate in (st.INTERRUPTED, st.FAILED, st.RUNNING, st.QUEUED):
        if candidate in states:
            overall = candidate
            break
    else:
        overall = st.COMPLETE
    skipped = [s for d in docs for s in (d.get("skipped") or {}).values()]
    return st.RunStatus(
        run_key=run_key, state=overall, error=_shard_errors(docs, states),
        num_samples=sum(int(d.get("num_samples", 0)) for d in docs), num_skipped=len(skipped), skipped=skipped,
        seconds=round(sum(float(d.get("seconds", 0.0)) for d in docs), 3), started=doc.get("started"),
        updated=max((d.get("heartbeat") for d in docs if d.get("heartbeat")), default=None),
        output_dir=doc.get("output_dir"),
        shards=[{"shard": d["shard"], "state": s, "num_samples": int(d.get("num_samples", 0)),
                 "holder": f"{d['owner']['host']}:{d['owner']['pid']}" if d.get("owner") else None,
                 "op_id": d.get("op_id"), "error": d.get("error")} for d, s in zip(docs, states)],
    )


def _shard_errors(docs, states):
    """What went wrong with which shards, and what to do; None when nothing did."""
    gone = [str(d["shard"]) for d, s in zip(docs, states) if s == st.INTERRUPTED]
    errors = [f"shard {d['shard']}: {d['error']}" for d in docs if d.get("error")]
    if gone:
        errors.insert(0, f"shard{'s' if len(gone) > 1 else ''} {', '.join(gone)} of {len(docs)} interrupted: "
                         f"{'their workers are' if len(gone) > 1 else 'its worker is'} gone; resume the run "
                         f"(cam_core.resume_run, or the resume_cam_run operator) to queue "
                         f"{'them' if len(gone) > 1 else 'it'} again")
    return "; ".join(errors) or None


def run_status(samples, run_key):
    """The status of one CAM run of ``samples``' dataset, read from the
    database (never from this process's cached copy of the dataset), from
    any process; for a run queued as several jobs, the sum of its shards.

    Returns:
        a :class:`cam_core.types.RunStatus`; ``state == "unknown"`` for a run
        recorded before run states existed (it has no state document). A
        complete run whose results are missing (its process died while
        saving them) gets them saved here, from its state

    Raises:
        CamArgumentError: (``run_key``) when the dataset has no such run
    """
    dataset = samples._root_dataset
    doc = run_doc(dataset, run_key)
    if doc is None:
        if run_key not in st.stored_run_keys(dataset):
            raise CamArgumentError("run_key", f"no run '{run_key}' on dataset '{dataset.name}'")
        return st.RunStatus(run_key=run_key, state="unknown")
    status = aggregate(doc, run_key) if doc.get("num_shards") else st._state_of(doc, run_key)
    results.repair(dataset, run_key, status)  # complete runs have readable results
    return status
