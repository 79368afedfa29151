"""Running a settled :class:`cam_core.compute.plan.Plan`: the run key claimed,
the run recorded, its fields declared, then batch after batch decoded and
explained on this thread while the previous one is stored on the writer's.

What survives what (the README's "What survives what" lists the tests):
the key is claimed atomically (:mod:`cam_core.runs.state`); each sample gets
all of its fields in one update or none; a killed run is ``interrupted`` and
``skip_existing=True`` continues it, first removing the files its crash left
unreferenced; an error stops the run as ``failed`` with its cause.
"""
import logging
import time

import fiftyone.core.utils as fou
import torch
from fiftyone import ViewField as F

from ..engine import CamEngine
from ..engine.detection import resizes_inside
from ..engine.detector import DetectorEngine
from ..media.loader import groups_by_shape, loader
from ..media.mapfiles import check_writable, sweep_unreferenced
from ..runs import owner, state
from ..runs.results import save_results
from ..skips import no_label
from . import batch, schema, truth
from .budget import UNMEASURED, BatchPlanner
from . import timing
from .writer import BatchWriter

logger = logging.getLogger(__name__)


def run(plan, progress=None, started=None):
    """Computes and stores every map of ``plan``.

    Returns:
        the run's :class:`cam_core.runs.CamRunResults` (also saved on the run):
        its counts and seconds cover the run and all its continuations

    Raises:
        CamArgumentError: (``run_key``) when another process holds the key;
            (``output_dir``) when map files cannot be written there
        the error that stopped the run (the run is then ``failed``; a
            ``KeyboardInterrupt`` leaves it ``interrupted``)
    """
    started = time.time() if started is None else started
    claim = open_run(plan)
    try:
        compute(plan, claim, progress, started)
    except BaseException as e:
        fail(claim, e)
        raise
    return close_run(plan, claim)


def open_run(plan):
    """Everything before the first batch: the output folder checked, an
    overwritten run deleted, the key claimed, the run recorded, its fields
    declared. Returns the :class:`cam_core.runs.state.Claim`."""
    dataset = plan.dataset
    created = plan.storage == "png" and check_writable(plan.output_dir)  # before anything is recorded
    if plan.replace:
        state.check_deletable(dataset, plan.run_key)
        dataset.delete_run(plan.run_key)  # its fields, map files and state
    registered = plan.run_key in state.stored_run_keys(dataset)
    mode = "resume" if plan.resume else "fresh"
    claim = state.claim(dataset, plan.run_key, mode, plan.output_dir, registered, plan.fields)
    try:
        if not registered:
            dataset.register_run(plan.run_key, plan.config(), overwrite=False)
        schema.declare(plan)
        if plan.storage == "png":  # the marker that makes its files this database's to delete
            owner.mark(dataset, plan.run_key, plan.output_dir, plan.fields, created)
    except BaseException as e:
        fail(claim, e)
        raise
    return claim


def fail(claim, error):
    """Stores how a run (or shard) ended early: ``interrupted`` for a
    KeyboardInterrupt, else ``failed`` with the error."""
    if isinstance(error, KeyboardInterrupt):
        claim.finish(state.INTERRUPTED, "interrupted by the user (KeyboardInterrupt)")
    else:
        claim.finish(state.FAILED, f"{type(error).__name__}: {error}")


def complete_count(plan, samples=None):
    """The samples (of ``samples``, default the dataset) holding every field
    of the run, counted: a continuation that recomputes a sample whose maps
    were removed does not count it twice."""
    samples = plan.dataset if samples is None else samples
    return samples.match(F.all([F(f).exists() for f in plan.all_fields()])).count()


def close_run(plan, claim):
    """Saves the run's results (counted over the run and its continuations),
    then marks it complete: a process killed while saving leaves the run
    ``interrupted`` (continue it), never ``complete`` without results."""
    done = claim.read(plan.run_key)
    done.num_samples = complete_count(plan)
    results = save_results(plan.dataset, plan.run_key, done, list(plan.fields))
    claim.finish(state.COMPLETE, num_samples=done.num_samples)
    return results


def compute(plan, claim, progress, started, only_ids=None):
    """The batch loop of a claimed run: ``plan.samples`` (when resuming, those
    missing a field), decoded, explained and stored batch by batch; with
    ``only_ids`` a shard sweeps only its own samples' files."""
    dataset = plan.dataset
    todo = plan.samples
    if plan.resume:
        todo = todo.match(F.any([~F(f).exists() for f in plan.all_fields()]))
        if plan.storage == "png":  # files a crash wrote but never referenced
            source = dataset if only_ids is None else plan.samples
            referenced = [p for f in plan.fields for p in source.values(f"{f}.map_path") if p]
            sweepable = owner.sweepable(dataset, plan.run_key, plan.output_dir, plan.fields)  # its own folders only
            swept = sweep_unreferenced(plan.output_dir, sweepable, referenced, only_ids)
            if swept:
                logger.info("cam_core: removed %d map files left unreferenced by an earlier crash", swept)
    ids, paths = todo.values(["id", "filepath"])
    if plan.resume:
        claim.retry(set(ids) & {s["id"] for s in claim.read(plan.run_key).skipped})
    labels = (truth.target_labels(plan, todo) if plan.target.kind == "field" and not (plan.segmenter or plan.detector)
              else None)

    module = plan.model.module
    home = _module_device(module)
    if plan.detector:
        engine = DetectorEngine(module.to(plan.device), plan.layers, plan.methods, plan.device,
                                eigen_smooth=plan.eigen_smooth, precision=plan.precision)
    else:
        engine = CamEngine(module.to(plan.device), plan.layers, plan.methods, plan.device,
                           plan.batch_size if plan.batch_size != "auto" else UNMEASURED,
                           eigen_smooth=plan.eigen_smooth, aug_smooth=plan.aug_smooth, precision=plan.precision)
    mixed_sizes = plan.detector and resizes_inside(module)
    # a detector's batch is split to the memory budget whatever its size: its per-object backwards can take GBs
    planner = BatchPlanner(plan.batch_size, plan.device, protect=plan.detector)
    writer = BatchWriter(plan, claim, started)
    try:
        with fou.ProgressBar(total=len(ids), progress=progress) as pb:
            for items in _batches(plan, planner, paths):
                good, skipped = [], []
                for it in items:
                    skip = it.skip
                    if skip is None and labels is not None and labels[it.index] is None:
                        skip = no_label(plan.target.field)
                    if skip is None:
                        good.append(it)
                    else:
                        skipped.append({"id": ids[it.index], "filepath": paths[it.index], "kind": skip.kind,
                                        "reason": skip.reason})
                # a detector that resizes inside takes images of any sizes in one batch
                groups = ([good] if good else []) if mixed_sizes else groups_by_shape(good)
                for part in (part for group in groups for part in planner.split(group)):
                    with planner.measured(len(part)), timing.part(plan.device):
                        placed = batch.explain(plan, engine, part, ids, labels)
                    # the loader's skips go with the batch's first part, then the part's own (untrue maps)
                    placed.skipped, skipped = skipped + placed.skipped, []
                    writer.submit(placed)
                if skipped:
                    writer.submit(batch.empty(skipped))
                pb.update(len(items))
    except BaseException:
        writer.close(raise_error=False)  # what it holds is stored; this thread's error is the one raised
        raise
    else:
        writer.close()
    finally:
        module.to(home)  # the model is left as found
        engine.close()


def _batches(plan, planner, paths):
    """The loader's batches of ``paths`` (items indexed into ``paths``): with
    an automatic batch size, small ones read in this thread until the
    planner has measured one, then one loader of the planned size."""
    start = 0
    while start < len(paths):
        settled = planner.settled
        end = len(paths) if settled else start + planner.size
        # an integer batch is the user's (the planner may split it); an automatic one is the planned size
        size = planner.size if planner.auto else planner.limit
        for items in loader(paths[start:end], plan.steps, size, plan.num_workers if settled else 0):
            for it in items:
                it.index += start
            yield items
        start = end


def _module_device(module):
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")
