"""What uses a run's fields: saved views, App filters, view stages.

Deleting a run deletes its fields; a saved view that sorts by one of its
scores or filters on one of its maps then shows nothing. These find them, so
that whoever deletes a run can be told which views it leaves empty (and may
delete them too: :func:`saved_views_using`).
"""
import json

from bson import json_util

from .record import run_config


def uses_fields(value, fields):
    """Whether a serialized view stage, a filter's path or a field path names
    one of ``fields`` or a path under one.

    Args:
        value: a stage as ``view._serialize()`` gives it (dicts and lists are
            searched through: every string and every key), or a path
        fields: field names

    Returns:
        True when a string in ``value`` is ``field``, ``$field``, or starts
        with ``field.`` / ``$field.`` for one of ``fields``
    """
    if isinstance(value, dict):
        return any(uses_fields(k, fields) or uses_fields(v, fields) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(uses_fields(v, fields) for v in value)
    if isinstance(value, str):
        path = value[1:] if value.startswith("$") else value
        return any(path == f or path.startswith(f + ".") for f in fields)
    return False


def serialized_stages(view):
    """A view's stages as JSON-compatible dicts (what the App sends and :func:`uses_fields` reads)."""
    return json.loads(json_util.dumps(view._serialize()))


def saved_views_using(dataset, run_key):
    """The saved views of ``dataset`` that use run ``run_key``'s fields (its
    Heatmap, agreement or detections fields: a sort by a score, a filter on a
    map, a patches view of its objects); deleting the run leaves them empty.

    Args:
        dataset: a FiftyOne dataset (or a view: its dataset is searched)
        run_key: a CAM run of that dataset

    Returns:
        the views' names, in the order of ``dataset.list_saved_views()``

    Raises:
        CamArgumentError: (``run_key``) when the dataset has no such CAM run
    """
    dataset = dataset._root_dataset
    fields = run_config(dataset, run_key).all_fields()
    return [name for name in dataset.list_saved_views()
            if uses_fields(serialized_stages(dataset.load_saved_view(name)), fields)]
