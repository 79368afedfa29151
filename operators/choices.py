"""Form inputs that several operators share: a CAM run, one of its heatmap
fields, one of its scores, a label field of some kinds.

Each input offers only values the engine accepts, and marks a value that
arrived from elsewhere (a Python call, a stale form) invalid with a message
that says what is allowed.
"""
import fiftyone.operators.types as types


def invalid(prop, message):
    """Marks ``prop`` invalid: the form shows ``message`` and cannot execute."""
    prop.invalid = True
    prop.error_message = message
    return False


def fields_of(view, *doc_types):
    """The fields of ``view`` that hold labels of these types (``fo.Detections``, ...)."""
    schema = view.get_field_schema()
    return [n for n, f in schema.items() if getattr(f, "document_type", None) in doc_types]


def dropdown(values):
    view = types.DropdownView()
    for value in values:
        view.add_choice(value, label=value)
    return view


def run_key(ctx, inputs, label, preselect=False):
    """The ``run_key`` input: one of the dataset's CAM runs.

    Args:
        preselect (False): offer the newest run by default (not for deleting)

    Returns:
        the chosen key, or None when there is none yet or it is invalid
    """
    import cam_core

    keys = cam_core.list_cam_runs(ctx.dataset)
    default = newest_run(ctx.dataset, keys) if preselect else None
    prop = inputs.enum("run_key", keys, default=default, required=True, label=label, view=dropdown(keys))
    if not keys:
        invalid(prop, "this dataset has no CAM run: compute one first (compute_cams)")
        return None
    key = ctx.params.get("run_key") or default
    if key is not None and key not in keys:
        invalid(prop, f"'{key}' is not a CAM run of this dataset; CAM runs: {', '.join(keys)}")
        return None
    return key


def newest_run(dataset, keys=None):
    """The most recent of the dataset's CAM runs (None when it has none)."""
    import datetime

    import cam_core

    keys = cam_core.list_cam_runs(dataset) if keys is None else keys
    started = {k: dataset.get_run_info(k).timestamp or datetime.datetime.min for k in keys}
    return max(keys, key=started.get) if keys else None


def run_field(ctx, inputs, run_key):
    """The ``field`` input: one of the run's heatmap fields (default its first).

    Returns:
        the chosen field, or None when it is invalid
    """
    fields = list(ctx.dataset.get_run_info(run_key).config.fields)
    prop = inputs.enum("field", fields, default=fields[0], label="Heatmap field",
                       description="One map of the run (a method on a layer)", view=dropdown(fields))
    field = ctx.params.get("field") or fields[0]
    if field not in fields:
        invalid(prop, f"'{field}' is not a field of run '{run_key}'; its fields: {', '.join(fields)}")
        return None
    return field


def scores_of(view, field):
    """The scores the maps of ``field`` carry (declared attributes), in :data:`cam_core.SCORES` order."""
    import cam_core

    schema = view.get_field_schema(flat=True)
    return [s for s in cam_core.SCORES if f"{field}.{s}" in schema]


def score(ctx, inputs, view, field, default, description):
    """The ``score`` input: one of the scores the maps of ``field`` carry.

    Returns:
        the chosen score, or None when it is invalid
    """
    present = scores_of(view, field)
    default = default if default in present else (present[0] if present else None)
    prop = inputs.enum("score", present, default=default, required=True, label="Score",
                       description=description, view=dropdown(present))
    chosen = ctx.params.get("score") or default
    if chosen not in present:
        hint = "" if "mass_inside" in present else " (mass_inside, pointing_hit and iou come from scoring the run against objects)"
        invalid(prop, f"maps of '{field}' have no score '{chosen}'; their scores: {', '.join(present)}{hint}")
        return None
    return chosen


def run_map_score(ctx, inputs, action, score_description):
    """The start of the forms over one map of a run: what to act on (the
    dataset, the current view or the selected samples), the run, one of its
    heatmap fields and one of that field's scores (default ``mass_inside``).

    Returns:
        ``(view, run_key, field)``: the target view, the chosen run and
        field (each None until it is valid)
    """
    inputs.view_target(ctx, action_description=action)
    view = ctx.target_view()
    key = run_key(ctx, inputs, "Run", preselect=True)
    field = key and run_field(ctx, inputs, key)
    if field:
        score(ctx, inputs, view, field, "mass_inside", score_description)
    return view, key, field


def label_field(ctx, inputs, view, name, doc_types, label, description, required=False):
    """An optional input naming a field of ``view`` with labels of ``doc_types``.

    Returns:
        (value, ok): the chosen field (None when empty) and whether it is valid
    """
    allowed = fields_of(view, *doc_types)
    kinds = " or ".join(t.__name__ for t in doc_types)
    prop = inputs.str(name, required=required, label=label, description=description, view=dropdown(allowed))
    value = ctx.params.get(name)
    if required and not allowed:
        return None, invalid(prop, f"this dataset has no {kinds} field")
    if value and value not in allowed:
        return value, invalid(prop, f"'{value}' is not a {kinds} field; such fields: {', '.join(allowed) or 'none'}")
    return value, True
