"""A run's fields declared before its first write, and kept declared while it runs.

FiftyOne saves a dataset's field list whole: a process that read the list
before another added a field, and then saves it, drops that field, and
samples holding it no longer load. A run therefore never writes the list: its
fields and their score attributes are each added by an update that adds only
them (:func:`cam_core.runs.fields.add_fields`), so nothing another process
saved is lost, and the run checks after every batch that its fields are still
listed (another tool may have saved a stale list), putting back any that went
missing.
"""
import fiftyone as fo
import fiftyone.core.fields as fof
import fiftyone.core.odm as foo

from ..runs.fields import add_fields
from ..scoring.names import (EMPTY, FAITHFULNESS_SCORES, MAP_SCALE, NUM_OBJECTS, REGION_SCORES, SHAPE_SCORES,
                             TARGET_ATTRIBUTES, TYPES)
from .detect import attribute_types

_FIELD_TYPES = {int: fof.IntField, str: fof.StringField, bool: fof.BooleanField, float: fof.FloatField}


def _named(name, kind):
    f = _FIELD_TYPES[kind]()
    f.name = name
    return f


def run_schema(plan):
    """``{field: fo field}`` of every field the run writes, with the score
    attributes each Heatmap carries."""
    names = [NUM_OBJECTS] if plan.detector else list(TARGET_ATTRIBUTES)
    names += list(SHAPE_SCORES) + [MAP_SCALE, EMPTY]
    if plan.gt_field:
        names += list(REGION_SCORES)
    if plan.faithfulness:
        names += list(FAITHFULNESS_SCORES)
    attributes = [_named(n, TYPES.get(n, float)) for n in names]
    schema = {f: fof.EmbeddedDocumentField(fo.Heatmap, fields=attributes) for f in plan.fields}
    if plan.agreement_field:
        schema[plan.agreement_field] = fof.EmbeddedDocumentField(
            fo.DynamicEmbeddedDocument, fields=[_named(g, float) for g in plan.agreement_groups])
    if plan.detector:  # the explained objects, each with its scores (declared, so the App filters them)
        detection = fof.EmbeddedDocumentField(
            fo.Detection, fields=[_named(n, t) for n, t in attribute_types(plan).items()])
        objects = fof.ListField(detection)
        objects.name = "detections"
        schema[plan.detections_field] = fof.EmbeddedDocumentField(fo.Detections, fields=[objects])
    return schema


def declare(plan):
    """Declares the run's fields and attributes (only what is missing is added; nothing stored is rewritten)."""
    add_fields(plan.dataset, run_schema(plan))


def listed_fields(dataset):
    """Top-level field names in the dataset's stored field list."""
    doc = foo.get_db_conn().datasets.find_one({"_id": dataset._doc.id}, {"sample_fields.name": 1})
    return {f["name"] for f in (doc or {}).get("sample_fields", [])}


def keep_declared(plan):
    """Puts back any of the run's fields that the stored field list lost."""
    if not set(plan.all_fields()) <= listed_fields(plan.dataset):
        declare(plan)
