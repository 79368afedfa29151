"""One run over many workers: :func:`queue_cams` splits a run into shards
queued as delegated operations, which any ``fiftyone delegated launch``
worker (on any machine sharing the database) executes with
:func:`run_shard`; :func:`resume_run` re-queues the shards a dead worker left.

FiftyOne's open-source build gives one delegated operation to one worker and
does not split an operation itself, so the split is ours: one operation per
shard. A shard is a contiguous range of the collection's sample ids (sorted),
fixed when the run is queued.
"""
import fiftyone.core.view as fov
from bson import ObjectId
from fiftyone import ViewField as F

from ..errors import CamArgumentError
from ..media.mapfiles import check_output_dir
from ..runs import shards, state
from ..runs.appearance import show_run
from . import checks, operations, runner
from .api import check_compute_args, parameters
from .queued import check_folder, check_splittable, stored_arguments


def queue_cams(samples, model, num_shards=2, delegation_target=None, **kwargs):
    """Queues a CAM run as ``num_shards`` delegated operations, one per shard
    of the samples, for ``fiftyone delegated launch`` workers to pick up.

    Everything is checked here first, exactly as :func:`cam_core.compute_cams`
    checks it; the run is then recorded once (its key claimed, its fields
    declared), so :func:`cam_core.run_status` follows it from any process.

    Args:
        samples: a ``fo.Dataset`` or view of images
        model: a name every worker builds the same: a registered factory's
            name (:func:`cam_core.register_factory`); not a Python object, a
            model registered in this process only, nor a library or zoo model,
            whose weights every worker would download itself
            (:func:`cam_core.checks.check_splittable`)
        num_shards (2): how many operations to queue, from 1 to the number
            of samples
        delegation_target (None): the orchestrator to queue them on
        **kwargs: :func:`cam_core.compute_cams`' keywords (``layers``,
            ``methods``, ``run_key``, ``device`` (``"auto"``: each worker's own
            GPU), ...), but no ``transforms`` (they come with the model); an
            ``output_dir`` must lie under the output root
            (:func:`cam_core.checks.output_root`: ``FIFTYONE_CAM_OUTPUT_ROOT``), as
            every worker checks it does

    Returns:
        the ids of the queued operations, one per shard

    Raises:
        CamArgumentError: naming the refused parameter, before anything is queued
    """
    check_splittable(model)
    if kwargs.get("output_dir"):
        # each worker writes only under its output root (FIFTYONE_CAM_OUTPUT_ROOT): refused here if not under ours;
        # stored resolved, so that a relative folder means the same in every worker, whatever its working directory
        kwargs["output_dir"] = check_output_dir(kwargs["output_dir"])
    if kwargs.get("skip_existing"):
        raise CamArgumentError("skip_existing", "a queued run is continued with cam_core.resume_run(dataset, run_key)")
    for key in ("transforms", "progress"):
        if kwargs.get(key) is not None:
            raise CamArgumentError(key, f"queue_cams takes no {key}: register a factory that returns a CamModel "
                                        f"with its transforms, so every worker builds the same")
    plan = check_compute_args(samples, model, **kwargs)
    count = checks.exact_count(plan.samples)
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or not 1 <= num_shards <= count:
        raise CamArgumentError(
            "num_shards", f"num_shards must be an integer from 1 to the number of samples ({count}); got {num_shards!r}")
    ids = sorted(plan.samples.values("id"))
    size, extra = divmod(len(ids), num_shards)
    bounds, start = [], 0
    for i in range(num_shards):
        end = start + size + (1 if i < extra else 0)
        bounds.append((ids[start], ids[end - 1]))
        start = end

    claim = runner.open_run(plan)
    arguments = {k: v for k, v in kwargs.items() if k not in ("overwrite", "skip_existing", "transforms", "progress")}
    arguments.update(model=model, run_key=plan.run_key, view=_stages(plan.samples))
    shards.create(plan.dataset, plan.run_key, bounds, arguments)
    claim.finish(state.SHARDED)
    return [operations.queue(plan.dataset, plan.run_key, i, delegation_target) for i in range(num_shards)]


def _stages(samples):
    return samples._serialize() if isinstance(samples, fov.DatasetView) else []


def shard_samples(dataset, run_key, shard, stages=None):
    """The samples of one shard: the queued collection (its serialized view
    ``stages``, default the stored ones) within the shard's id range."""
    doc, sdoc = shards.run_doc(dataset, run_key), shards.shard_doc(dataset, run_key, shard)
    if doc is None or not doc.get("num_shards") or sdoc is None:
        raise CamArgumentError("run_key", f"run '{run_key}' of dataset '{dataset.name}' has no shard {shard}")
    stages = doc["arguments"]["view"] if stages is None else stages
    base = fov.DatasetView._build(dataset, stages) if stages else dataset
    return base.match((F("_id") >= ObjectId(sdoc["lo"])) & (F("_id") <= ObjectId(sdoc["hi"])))


def run_shard(dataset, run_key, shard, progress=None, output_root=None):
    """Computes one shard of a queued run (what a worker's operation does):
    only its samples still missing a field, with the run's arguments.
    Completing the last shard completes the run, saves its results and gives
    it its look in the App (:func:`cam_core.show_run`).

    The stored arguments are untrusted: they are checked as the App's form
    checks a user's (:func:`cam_core.compute.queued.stored_arguments`: the
    model a registered factory this process allows, the view FiftyOne's own
    stages, ``output_dir`` under ``output_root``), so is the folder the run's
    record names (:func:`cam_core.compute.queued.check_folder`), and the model
    is built here. Whatever fails once the shard is claimed, a refusal or a factory
    that calls ``sys.exit``, leaves the shard ``failed`` with its cause
    (:func:`resume_run` queues it again).

    Args:
        output_root (None): the folder the shard's ``output_dir`` must lie
            under (see :func:`cam_core.checks.output_root`; the worker's operator
            passes the plugin secret ``FIFTYONE_CAM_OUTPUT_ROOT``)

    Returns:
        the shard's :class:`cam_core.types.RunStatus` (``state`` ``"complete"``),
        or None when the shard was complete already

    Raises:
        CamArgumentError: (``run_key``) when a live process holds the shard;
            any refusal of its arguments (the shard is then ``failed``)
    """
    import time

    started = time.time()
    claim = shards.claim_shard(dataset, run_key, shard)
    if claim is None:
        return None
    try:
        arguments = stored_arguments(shards.run_doc(dataset, run_key), parameters(), output_root)
        samples = shard_samples(dataset, run_key, shard, arguments.pop("view"))
        plan = check_compute_args(samples, arguments.pop("model"), skip_existing=True, **arguments)
        check_folder(plan, output_root)  # where the run's record says its maps go
        runner.compute(plan, claim, progress, started, only_ids=set(samples.values("id")))
    except BaseException as e:
        runner.fail(claim, e)
        raise
    claim.finish(state.COMPLETE, num_samples=runner.complete_count(plan, samples))
    # the last shard: reading the run's status saves its results, summed (and
    # a worker killed while saving them leaves that to the next reader)
    status = shards.run_status(dataset, run_key)
    if status.state == state.COMPLETE:  # and gives the run its look in the App
        show_run(dataset, run_key)
    return claim.read(run_key)


def resume_run(samples, run_key, delegation_target=None):
    """Re-queues the shards of a queued run that are not complete and whose
    worker is gone (killed, failed); each computes only its missing samples.
    The operation of a shard taken over from a killed worker, which FiftyOne
    still shows as running, is marked failed, saying so.

    Returns:
        the ids of the operations queued (empty when nothing was left to do)

    Raises:
        CamArgumentError: (``run_key``) for a run that was not queued as shards
            (continue it with ``compute_cams(..., skip_existing=True)``)
    """
    dataset = samples._root_dataset
    doc = shards.run_doc(dataset, run_key)
    if doc is None or not doc.get("num_shards"):
        raise CamArgumentError(
            "run_key", f"run '{run_key}' was not queued as shards; continue it with "
                       f"compute_cams(..., run_key='{run_key}', skip_existing=True)")
    queued = []
    for sdoc in shards.shard_docs(dataset, run_key):
        stuck = sdoc["state"] == state.QUEUED and operations.gone(sdoc.get("op_id"))
        if (stuck or sdoc["state"] != state.QUEUED) and shards.requeue(dataset, run_key, sdoc["shard"]):
            op_id = operations.queue(dataset, run_key, sdoc["shard"], delegation_target)
            queued.append(op_id)
            if sdoc["state"] == state.RUNNING and sdoc.get("op_id"):  # its holder was gone (requeue checked)
                holder = sdoc.get("owner") or {}
                operations.taken_over(sdoc["op_id"], (
                    f"shard {sdoc['shard']} of CAM run '{run_key}' was taken over: its worker (process "
                    f"{holder.get('pid')} on {holder.get('host')}) is gone, and resume_run queued the shard "
                    f"again as operation {op_id}"))
    return queued
