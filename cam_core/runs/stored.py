"""A run's stored maps read back: one sample's maps with their scores, the
mean map per explained class, and how much the maps agree with one another.

The means and the agreement read map files, so they read a bounded number of
samples (chosen by the database); every count comes from the database.
"""
import math

import fiftyone as fo
import numpy as np
from fiftyone import ViewField as F
from PIL import Image

from ..errors import CamArgumentError
from ..media.mapfiles import load_map
from ..scoring.names import DETECTION_SCORES, REGION_SCORES, SHAPE_SCORES, TARGET_ATTRIBUTES, object_attribute
from .record import run_config
from .rescore import explained_class
from .views import run_field

ALL_OBJECTS = "all objects"  # a detector's maps explain all of a sample's objects: their "class"


def sample_maps(sample, run_key):
    """The maps of one sample stored by a run (and the explanations saved on
    it), in the run's order: methods, then layers.

    Args:
        sample: a FiftyOne sample of the run's dataset
        run_key: a CAM run's key

    Returns:
        a list of dicts: ``field``, ``method``, ``layer``, ``target`` (the
        explained class, or a saved explanation's target), ``saved`` (a saved
        explanation), ``map`` (float array in [0, 1], at the stored size; the
        App stretches it over the image) and ``scores`` (``{name: value}`` of
        the target, shape and region scores it carries); maps the sample
        lacks are left out
    """
    config = run_config(sample._dataset, run_key)
    fields = [(f, m, l, None) for f, (m, l) in config.fields.items()]
    fields += [(f, e["method"], e["layer"], e["target"]) for f, e in (config.explanations or {}).items()]
    out = []
    for field, method, layer, saved in fields:
        heat = sample[field] if sample.has_field(field) else None
        if heat is None:
            continue
        scores = {name: heat[name] for name in TARGET_ATTRIBUTES + SHAPE_SCORES + REGION_SCORES + ("road",)
                  if heat.has_field(name) and heat[name] is not None}
        label = explained_class(heat)[0]
        out.append({"field": field, "method": method, "layer": layer, "target": saved or label or ALL_OBJECTS,
                    "saved": saved is not None, "map": load_map(heat).astype(np.float32), "scores": scores})
    return out


def sample_objects(sample, run_key):
    """A detector run's explained objects of one sample, each with its own
    scores per map: a list of ``{"id", "label", "confidence", "box",
    "scores": {field: {score: value}}}`` (empty for other runs)."""
    config = run_config(sample._dataset, run_key)
    dets = sample[config.detections_field] if config.detections_field and sample.has_field(config.detections_field) else None
    out = []
    for d in (dets.detections if dets is not None else []):
        scores = {f: {s: d[object_attribute(run_key, f, s)] for s in DETECTION_SCORES
                      if d.has_field(object_attribute(run_key, f, s))} for f in config.fields}
        out.append({"id": d.id, "label": d.label, "confidence": d.confidence, "box": list(d.bounding_box),
                    "scores": scores})
    return out


def class_view(samples, run_key, label, field=None):
    """The samples whose map of ``field`` explains class ``label`` (a
    detector run's :data:`ALL_OBJECTS`: those with a map)."""
    field = run_field(run_config(samples, run_key), run_key, field)
    if label == ALL_OBJECTS:
        return samples.exists(field)
    return samples.match(F(f"{field}.target_label") == label)


def class_means(samples, run_key, field=None, per_class=16, size=64, max_classes=16):
    """The mean map per explained class, each over at most ``per_class`` of
    its samples (the counts are all of them, from the database).

    Returns:
        a list of dicts, most frequent class first: ``label``, ``count``
        (samples of the class with a map), ``used`` (maps averaged) and
        ``map`` (a ``size`` x ``size`` float array in [0, 1])

    Raises:
        CamArgumentError: naming the refused parameter
    """
    field = run_field(run_config(samples, run_key), run_key, field)
    for name, value in (("per_class", per_class), ("size", size), ("max_classes", max_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CamArgumentError(name, f"{name} must be a positive integer; got {value!r}")
    with_map = samples.exists(field)
    if f"{field}.target_label" in samples.get_field_schema(flat=True):
        counts = with_map.count_values(f"{field}.target_label")
    else:
        counts = {ALL_OBJECTS: with_map.count()}
    labels = sorted((l for l in counts if l is not None), key=lambda l: (-counts[l], str(l)))[:max_classes]
    out = []
    for label in labels:
        heats = class_view(with_map, run_key, label, field).limit(per_class).values(field)
        total = sum(_resized(load_map(h), size) for h in heats)
        out.append({"label": label, "count": int(counts[label]), "used": len(heats), "map": total / max(len(heats), 1)})
    return out


def agreement_matrix(samples, run_key, max_samples=32):
    """How much each pair of the run's maps agree: the Pearson correlation
    of the two maps of a sample, averaged over at most ``max_samples``
    samples holding every map (NaN pairs, a constant map's, left out).

    Returns:
        a dict: ``fields`` and ``labels`` (``"method / layer"``) of the maps,
        ``matrix`` (their F x F mean correlations, None where no sample
        gave one), ``samples`` (how many were read) and ``groups`` (the
        run's stored agreement values averaged over all ``samples`` by the
        database: ``{"methods_<layer>" / "layers_<method>": mean}``)
    """
    config = run_config(samples, run_key)
    fields = list(config.fields)
    if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
        raise CamArgumentError("max_samples", f"max_samples must be a positive integer; got {max_samples!r}")
    full = samples.match(F.all([F(f).exists() for f in fields])).limit(max_samples)
    sums, counts = np.zeros((len(fields), len(fields))), np.zeros((len(fields), len(fields)))
    read = 0
    for heats in zip(*full.values(fields)) if fields else []:
        maps = [load_map(h) for h in heats]
        if len({m.shape for m in maps}) > 1:
            continue
        read += 1
        r = _correlations(np.stack([m.ravel() for m in maps]))
        ok = ~np.isnan(r)
        sums[ok] += r[ok]
        counts[ok] += 1
    matrix = [[float(sums[i, j] / counts[i, j]) if counts[i, j] else None for j in range(len(fields))]
              for i in range(len(fields))]
    groups = {}
    if config.agreement_field:
        prefix = config.agreement_field + "."
        names = sorted(p[len(prefix):] for p in samples.get_field_schema(flat=True) if p.startswith(prefix))
        means = samples.aggregate([fo.Mean(f"{prefix}{n}", safe=True) for n in names]) if names else []
        groups = {n: (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
                  for n, v in zip(names, means)}
    labels = [f"{m} / {l}" if l else m for m, l in config.fields.values()]
    return {"fields": fields, "labels": labels, "matrix": matrix, "samples": read,
            "groups": groups}


def _correlations(x):
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.sqrt((x * x).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x @ x.T) / np.outer(norm, norm)


def _resized(arr, size):
    img = Image.fromarray(np.asarray(arr, dtype=np.float32), mode="F")
    return np.clip(np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.float64), 0, 1)
