"""Fields added to a dataset's schema by updates that only add.

FiftyOne saves a dataset's field list whole (it reads the list, adds a field
and writes the list back), so two processes that change the schema at the
same moment can each write a list that lacks the other's field, and samples
holding a field the list lacks no longer load (``FieldDoesNotExist``). Here
each missing field, and each missing attribute of an existing embedded field,
is added by one update that adds only it (a ``$push`` guarded by its name's
absence), never by writing the list: whatever another process saved
meanwhile stays. FiftyOne decides what is new and serialises each field, as
its own ``add_sample_field`` would.
"""
import datetime

import fiftyone.core.odm as foo
from fiftyone.core.odm.dataset import SampleFieldDocument
from fiftyone.core.odm.mixins import _get_db_field


def add_fields(dataset, schema):
    """Declares ``schema``'s fields on ``dataset``, keeping every field stored.

    Args:
        dataset: a ``fo.Dataset``
        schema: ``{path: fiftyone.core.fields.Field}``; a path is a field
            name or ``field.attribute`` (embedded fields are merged: only
            their missing attributes are added)

    Returns:
        the paths that were new (the dataset is reloaded when there were)

    Raises:
        ValueError: from FiftyOne, when a field exists with another type
    """
    dataset.reload()  # what is stored now decides what is new
    new = {}
    for path, field in schema.items():
        added, _ = dataset._sample_doc_cls._merge_field(path, field, validate=True, recursive=True)
        new.update(added or {})
    now = datetime.datetime.utcnow()
    for path, field in new.items():
        _push(dataset, path, _field_doc(path, field, now), now)
    if new:
        dataset.reload()
    return list(new)


def _field_doc(path, field, now):
    """The stored description of a new field, as FiftyOne's ``_add_field_schema`` makes it."""
    name = path.rsplit(".", 1)[-1]
    field = field.copy()
    field.db_field = _get_db_field(field, name)
    field.name = name
    field._set_created_at(now)
    return SampleFieldDocument.from_field(field).to_mongo()


def _push(dataset, path, doc, now):
    """Adds one field description where ``path`` says, unless one of its name is there already."""
    *parents, name = path.split(".")
    guard = {"name": {"$ne": name}} if not parents else {"fields.name": {"$ne": name}}
    for parent in reversed(parents[1:]):  # innermost first: the parent that lacks the name, inside its parents
        guard = {"fields": {"$elemMatch": dict(guard, name=parent)}}
    where = {"_id": dataset._doc.id}
    if parents:
        where["sample_fields"] = {"$elemMatch": dict(guard, name=parents[0])}
    else:
        where["sample_fields.name"] = {"$ne": name}
    target = "sample_fields" + "".join(f".$[p{i}].fields" for i in range(len(parents)))
    filters = [{f"p{i}.name": p} for i, p in enumerate(parents)] or None
    foo.get_db_conn().datasets.update_one(where, {"$push": {target: doc}, "$set": {"last_modified_at": now}},
                                          array_filters=filters)
