"""A run's fields declared in one schema update, before its first write,
and kept declared while it runs.

FiftyOne saves a dataset's field list as a whole: two processes that each
add fields at the same moment can lose one another's, and a sample holding a
field the list lacks can no longer be loaded. CAM runs therefore change the
schema only under a per-dataset lock in the database, in one update for all
their fields and score attributes, and check after every batch that the
fields are still listed (another tool may have saved a stale list), putting
back any that went missing.
"""
import datetime
import time
import uuid
from contextlib import contextmanager

import fiftyone as fo
import fiftyone.core.fields as fof
import fiftyone.core.odm as foo
import pymongo.errors

from ..scoring.names import (EMPTY, FAITHFULNESS_SCORES, MAP_SCALE, NUM_OBJECTS, REGION_SCORES, SHAPE_SCORES,
                             TARGET_ATTRIBUTES, TYPES)
from .detect import attribute_types

LOCKS = "cam_core_locks"
LOCK_TTL_S = 60.0
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


@contextmanager
def schema_lock(dataset, timeout=60.0):
    """Holds the dataset's schema lock (a document in ``cam_core_locks``); a
    lock older than :data:`LOCK_TTL_S` (its holder died) is taken over."""
    coll = foo.get_db_conn()[LOCKS]
    key, token = str(dataset._doc.id), uuid.uuid4().hex
    deadline = time.time() + timeout
    while True:
        now = datetime.datetime.utcnow()
        try:
            coll.insert_one({"_id": key, "token": token, "at": now})
            break
        except pymongo.errors.DuplicateKeyError:
            stale = now - datetime.timedelta(seconds=LOCK_TTL_S)
            if coll.delete_one({"_id": key, "at": {"$lt": stale}}).deleted_count:
                continue
            if time.time() > deadline:
                raise TimeoutError(f"the schema of dataset '{dataset.name}' stayed locked for {timeout:.0f} s")
            time.sleep(0.05)
    try:
        yield
    finally:
        coll.delete_one({"_id": key, "token": token})


def declare(plan):
    """Declares the run's fields and attributes (one update; existing ones are kept)."""
    with schema_lock(plan.dataset):
        plan.dataset.reload()  # the field list as stored now, not as this process last saw it
        plan.dataset._merge_sample_field_schema(run_schema(plan))


def listed_fields(dataset):
    """Top-level field names in the dataset's stored field list."""
    doc = foo.get_db_conn().datasets.find_one({"_id": dataset._doc.id}, {"sample_fields.name": 1})
    return {f["name"] for f in (doc or {}).get("sample_fields", [])}


def keep_declared(plan):
    """Puts back any of the run's fields that the stored field list lost."""
    if not set(plan.all_fields()) <= listed_fields(plan.dataset):
        declare(plan)
