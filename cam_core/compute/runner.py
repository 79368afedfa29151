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
from ..media.loader import groups_by_shape, loader
from ..media.mapfiles import check_writable, sweep_unreferenced
from ..runs import state
from ..runs.record import CamRunResults
from ..skips import no_label
from . import batch, schema, truth
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
    dataset = plan.dataset
    if plan.storage == "png":
        check_writable(plan.output_dir)  # before anything is recorded
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
        _compute(plan, claim, progress, started)
    except KeyboardInterrupt:
        claim.finish(state.INTERRUPTED, "interrupted by the user (KeyboardInterrupt)")
        raise
    except BaseException as e:
        claim.finish(state.FAILED, f"{type(e).__name__}: {e}")
        raise
    # the samples holding every field of the run, counted: a continuation
    # that recomputes a sample whose maps were removed does not count it twice
    complete = dataset.match(F.all([F(f).exists() for f in plan.all_fields()])).count()
    claim.finish(state.COMPLETE, num_samples=complete)

    done = claim.read(plan.run_key)
    results = CamRunResults(
        dataset, dataset.get_run_info(plan.run_key).config, plan.run_key, num_samples=done.num_samples,
        num_skipped=done.num_skipped, skipped=done.skipped, fields=list(plan.fields), seconds=done.seconds,
    )
    dataset.save_run_results(plan.run_key, results, overwrite=True)
    logger.info("cam_core: %s", results.summary())
    return results


def _compute(plan, claim, progress, started):
    dataset = plan.dataset
    todo = plan.samples
    if plan.resume:
        todo = todo.match(F.any([~F(f).exists() for f in plan.all_fields()]))
        if plan.storage == "png":  # files a crash wrote but never referenced
            referenced = [p for f in plan.fields for p in dataset.values(f"{f}.map_path") if p]
            swept = sweep_unreferenced(plan.output_dir, plan.fields, referenced)
            if swept:
                logger.info("cam_core: removed %d map files left unreferenced by an earlier crash", swept)
    ids, paths = todo.values(["id", "filepath"])
    if plan.resume:
        claim.retry(set(ids) & {s["id"] for s in claim.read(plan.run_key).skipped})
    labels = truth.target_labels(plan, todo) if plan.target.kind == "field" and not plan.segmenter else None

    module = plan.model.module
    home = _module_device(module)
    engine = CamEngine(module.to(plan.device), plan.layers, plan.methods, plan.device, plan.batch_size)
    writer = BatchWriter(plan, claim, started)
    try:
        with fou.ProgressBar(total=len(ids), progress=progress) as pb:
            for items in loader(paths, plan.steps, plan.batch_size, plan.num_workers):
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
                groups = groups_by_shape(good)
                for g, group in enumerate(groups):
                    placed = batch.explain(plan, engine, group, ids, labels)
                    if g == 0:
                        placed.skipped = skipped
                    writer.submit(placed)
                if not groups and skipped:
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


def _module_device(module):
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")
