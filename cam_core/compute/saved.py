"""An explanation on demand kept: :func:`save_explanation` stores maps of
:func:`cam_core.explain` on a sample as fields of a run, written as the
run's own maps are (8-bit PNG files or inline, with their scores), declared
in the dataset's schema (so the App filters them) and recorded in the run's
config (``explanations``), so deleting or renaming the run takes them along.
"""
import os
import re
from types import SimpleNamespace

import fiftyone as fo

from ..errors import CamArgumentError, CamArgumentTypeError
from ..labels import mask_targets_of
from ..media.mapdirs import MapFolders
from ..media.mapfiles import STORED_RANGE, to_float, write_png
from ..runs import owner
from ..runs.record import run_config
from ..scoring import region_mask, region_scores
from ..scoring.names import EMPTY, MAP_SCALE
from . import schema
from .explanation import Explanation
from .plan import field_name
from .writer import bulk_write


def explanation_field(run_key, key, target):
    """The field a saved map goes to: the run's field of its (method, layer)
    and its target, ``cam_gradcam_layer4_tabby`` (``..._tabby_not_dog`` for a
    difference, ``..._prediction`` for the prediction)."""
    method, layer = key
    words = re.sub(r"[^0-9a-zA-Z]+", "_", target.replace("class:", "").replace(", not ", " not ").lower()).strip("_")
    return f"{field_name(run_key, method, layer)}_{words or 'map'}"


def save_explanation(sample, run_key, explanation, keys=None):
    """Stores maps of an explanation of ``sample`` as fields of a run.

    Args:
        sample: the FiftyOne sample the explanation was computed for (it
            must be in the run's dataset)
        run_key: a CAM run of its dataset, computed with the same model
        explanation: the :class:`cam_core.types.Explanation` of this sample
            (:func:`cam_core.explain`)
        keys (None): the ``(method, layer)`` maps to store; None for all

    Returns:
        ``{(method, layer): field}`` of the fields written (see
        :func:`explanation_field`); a field saved before for the run is
        written again, on this sample only. They are written to the
        database: read the sample again (``dataset[sample.id]``) to see them

    Raises:
        CamArgumentError: naming the refused parameter, before anything is written
    """
    if not isinstance(explanation, Explanation):
        raise CamArgumentTypeError("explanation", f"explanation must be what cam_core.explain returns; got "
                                                  f"{type(explanation).__name__}")
    dataset = getattr(sample, "_dataset", None)
    if dataset is None or not getattr(sample, "in_dataset", False):
        raise CamArgumentError("sample", "the sample must be in a dataset: the run's fields are stored on it")
    dataset = dataset._root_dataset if hasattr(dataset, "_root_dataset") else dataset
    config = run_config(dataset, run_key)
    if explanation.source != sample.filepath:
        raise CamArgumentError("explanation", f"the explanation is of '{explanation.source}', not of this sample's "
                                              f"image '{sample.filepath}'")
    if explanation.model != config.model:
        raise CamArgumentError("explanation", f"the explanation was computed with model '{explanation.model}'; run "
                                              f"'{run_key}' with '{config.model}': its fields hold that model's maps")
    keys = list(explanation) if keys is None else [tuple(k) for k in keys]
    unknown = [k for k in keys if k not in explanation]
    if unknown:
        raise CamArgumentError("keys", f"the explanation has no map {unknown[0]}; its maps: {list(explanation)}")
    fields = {k: explanation_field(run_key, k, explanation.target) for k in keys}
    schema_now = dataset.get_field_schema()
    owned = set(config.all_fields()) | set(getattr(config, "explanations", {}) or {})
    taken = [f for f in fields.values() if (f in schema_now and f not in owned) or f in config.fields]
    if taken:
        raise CamArgumentError("keys", f"field '{taken[0]}' exists and is not a saved explanation of run '{run_key}'")

    plan = SimpleNamespace(dataset=dataset, fields={f: list(k) for k, f in fields.items()}, detector=False,
                           gt_field=config.gt_field, faithfulness=False, agreement_field=None)
    schema.declare(plan)  # the schema update of a run's own fields (its lock, one update)
    if config.storage == "png":
        # the run's marker names the new field folders: the run's cleanup may then remove them
        owner.mark(dataset, run_key, config.output_dir, list(fields.values()), created=False)
        with MapFolders(config.output_dir, list(fields.values())) as folders:
            labels = _labels(sample, config, explanation, fields, folders)
    else:
        labels = _labels(sample, config, explanation, fields)
    bulk_write(dataset, {sample.id: labels})
    dataset.reload()  # the run's record as stored now (another process may have saved one)
    config = dataset.get_run_info(run_key).config
    saved = dict(getattr(config, "explanations", None) or {})
    for k, f in fields.items():
        saved[f] = {"method": k[0], "layer": k[1], "target": explanation.target}
    config.explanations = saved
    dataset.update_run_config(run_key, config)
    return fields


def _labels(sample, config, explanation, fields, folders=None):
    """``{field: fo.Heatmap}``: each map stored as the run stores its own."""
    lo, hi = STORED_RANGE
    stored = explanation.stored_maps(list(fields)).cpu().numpy()
    base = {"target_index": explanation.target_index, "target_label": explanation.target_label,
            "target_score": explanation.target_score, "target_confidence": explanation.target_confidence}
    if explanation.map_scale() < 1.0:
        base[MAP_SCALE] = explanation.map_scale()
    objects = sample[config.gt_field] if config.gt_field else None
    mask_targets = mask_targets_of(sample._dataset, config.gt_field) if config.gt_field else None
    labels, region = {}, False
    for arr, (key, f) in zip(stored, fields.items()):
        a = dict(base, **explanation.scores[key])
        a[EMPTY] = a["spread"] is None
        if config.gt_field:
            cam = to_float(arr)
            if region is False:  # one region per sample, shared by its maps
                region = region_mask(objects, cam.shape, a["target_label"], a["target_index"], config.all_objects,
                                     mask_targets)
            a.update(region_scores(cam, region, config.iou_threshold))
        if config.storage == "png":
            path = os.path.join(config.output_dir, f, sample.id + ".png")
            write_png(folders, path, arr)
            labels[f] = fo.Heatmap(map_path=path, range=list(STORED_RANGE), **a)
        else:
            labels[f] = fo.Heatmap(map=arr, range=list(STORED_RANGE), **a)
    return labels
