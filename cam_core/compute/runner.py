"""Running a settled :class:`cam_core.compute.plan.Plan`: the run recorded,
its fields declared, then batch after batch decoded, explained and written."""
import logging
import time

import fiftyone as fo
import fiftyone.core.utils as fou
import torch
from fiftyone import ViewField as F

from ..engine import CamEngine
from ..media.loader import groups_by_shape, loader
from ..runs.record import CamRunResults
from ..skips import no_label
from . import batch, truth
from .writer import write

logger = logging.getLogger(__name__)


def run(plan, progress=None, started=None):
    """Computes and stores every map of ``plan``.

    Returns:
        the run's :class:`cam_core.runs.CamRunResults` (also saved on the run)
    """
    started = time.time() if started is None else started
    dataset = plan.dataset
    if plan.replace:
        dataset.delete_run(plan.run_key)  # its fields and map files
    if not plan.resume:
        dataset.register_run(plan.run_key, plan.config(), overwrite=False)
    _declare_fields(plan)

    todo = plan.samples
    if plan.resume:
        todo = todo.match(F.any([~F(f).exists() for f in plan.fields]))
    ids, paths = todo.values(["id", "filepath"]) if todo.count() else ([], [])
    labels = truth.target_labels(plan, todo) if plan.target.kind == "field" and not plan.segmenter else None

    module = plan.model.module
    home = _module_device(module)
    engine = CamEngine(module.to(plan.device), plan.layers, plan.methods, plan.device, plan.batch_size)
    done, skipped = 0, []
    try:
        with fou.ProgressBar(total=len(ids), progress=progress) as pb:
            for items in loader(paths, plan.steps, plan.batch_size, plan.num_workers):
                good = []
                for it in items:
                    skip = it.skip
                    if skip is None and labels is not None and labels[it.index] is None:
                        skip = no_label(plan.target.field)
                    if skip is None:
                        good.append(it)
                    else:
                        skipped.append({"id": ids[it.index], "filepath": paths[it.index], "kind": skip.kind,
                                        "reason": skip.reason})
                updates = {}
                for group in groups_by_shape(good):
                    updates.update(batch.explain(plan, engine, group, ids, labels))
                write(dataset, updates)
                done += len(updates)
                pb.update(len(items))
    finally:
        module.to(home)  # the model is left as found
        engine.close()

    # scores are dynamic attributes of the maps: declared, the App's sidebar filters them
    dataset.add_dynamic_sample_fields(fields=plan.all_fields())
    results = CamRunResults(
        dataset, dataset.get_run_info(plan.run_key).config, plan.run_key,
        num_samples=done, num_skipped=len(skipped), skipped=skipped, fields=list(plan.fields),
        seconds=round(time.time() - started, 3),
    )
    dataset.save_run_results(plan.run_key, results, overwrite=True)
    logger.info("cam_core: %s", results.summary())
    return results


def _declare_fields(plan):
    dataset = plan.dataset
    for f in plan.fields:
        if f not in dataset.get_field_schema():
            dataset.add_sample_field(f, fo.EmbeddedDocumentField, embedded_doc_type=fo.Heatmap)
    if plan.agreement_field and plan.agreement_field not in dataset.get_field_schema():
        dataset.add_sample_field(plan.agreement_field, fo.EmbeddedDocumentField,
                                 embedded_doc_type=fo.DynamicEmbeddedDocument)


def _module_device(module):
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")
