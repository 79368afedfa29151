"""Form inputs that several operators share (a CAM run, one of its heatmap
fields, one of its scores, a label field of some kinds, what to act on, a
model's layers) and the one way
every form checks what it was given: the engine's own check.

Inputs offer only values the engine accepts. A value that arrived from
elsewhere (a Python call, a stale form) goes through the same
``cam_core.check_*`` function a Python call meets; :func:`engine_check`
marks the property it names invalid with its message.
"""
import fiftyone.operators.types as types


def invalid(prop, message):
    """Marks ``prop`` invalid: the form shows ``message`` and cannot execute."""
    prop.invalid = True
    prop.error_message = message
    return False


def engine_check(inputs, names, check, *args, **kwargs):
    """Runs a ``cam_core`` check; a refusal marks the form property of the
    parameter it names invalid with its message.

    Args:
        inputs: the form's ``types.Object``
        names: ``{engine parameter: form property}`` where they differ
        check: a function that raises :class:`cam_core.CamArgumentError`
        *args, **kwargs: its arguments

    Returns:
        ``(value, ok)``: what the check returned (None when refused) and
        whether it passed
    """
    import cam_core

    try:
        return check(*args, **kwargs), True
    except cam_core.CamArgumentError as e:
        name = names.get(e.param, e.param)
        prop = inputs.properties.get(name)
        if prop is None:  # a parameter the form has no input for: an error of its own
            prop = inputs.view(f"{name}_error", types.Error(label=e.message))
        invalid(prop, e.message)
        return None, False


def secret(ctx, key):
    """The plugin secret ``key`` (declared under ``secrets:`` in fiftyone.yml)
    for this operation, or None when it is not set. Open-source FiftyOne reads
    it from the environment variable of that name; deployments may set it in
    their secrets store instead."""
    try:
        value = ctx.secrets[key]
    except Exception:  # a context without secrets (an older FiftyOne)
        return None
    return value or None


def dropdown(values):
    view = types.DropdownView()
    for value in values:
        view.add_choice(value, label=value)
    return view


def layer_picker(facts):
    """The layer picker of a model (a :class:`operators.models.ModelFacts`):
    its explainable layers in :func:`layer_order`, each labelled with its
    output shape. A typed name is kept, not dropped, so that an unknown one
    reaches the engine's check, whose message names the closest layers."""
    view = types.DropdownView(multiple=True, allow_user_input=True)
    for info in layer_order(facts):
        suggested = " (suggested)" if info.name in facts.default_layers else ""
        shape = "x".join(str(d) for d in info.shape[1:])
        view.add_choice(info.name, label=f"{info.name} [{shape}]{suggested}")
    return view


def class_input(inputs, facts, required, description):
    """The ``target_class`` input: one of the model's classes (a
    :class:`operators.models.ModelFacts`), or an output index when it has no names."""
    if facts.classes is not None:
        view = types.AutocompleteView(allow_user_input=False)
        for c in facts.classes:
            view.add_choice(str(c), label=str(c))
    else:
        view = types.View()
        last = f"0 to {facts.num_outputs - 1}" if facts.num_outputs is not None else "from 0"
        description += f" (an output index, {last}: the model has no class names)"
    inputs.str("target_class", required=required, label="Class", description=description, view=view)


def layer_order(facts):
    """A model's explainable layers in the order a picker offers them: the
    suggested layers, then outer modules before the modules inside them
    (``layer3`` before ``layer3.0`` before ``layer3.0.conv1``), each depth in
    forward order. The App filters the list as the user types and keeps this
    order: typing ``layer3`` shows the stage ``layer3`` first."""
    suggested = set(facts.default_layers)
    forward = {info.name: i for i, info in enumerate(facts.layers)}
    return sorted(facts.layers, key=lambda info: (info.name not in suggested, info.name.count("."), forward[info.name]))


def run_key(ctx, inputs, label, preselect=False, keys=None):
    """The ``run_key`` input: one of the dataset's CAM runs.

    Args:
        preselect (False): offer the newest run by default (not for deleting)
        keys (None): the runs offered (default: every CAM run); a key sent
            that is not one of them is left to the form's own engine check

    Returns:
        the chosen key, or None when there is none yet or it is invalid
    """
    import cam_core

    keys = cam_core.list_cam_runs(ctx.dataset) if keys is None else list(keys)
    default = newest_run(ctx.dataset, keys) if preselect else None
    inputs.enum("run_key", keys, default=default, required=True, label=label, view=dropdown(keys))
    key = ctx.params.get("run_key") or default
    if key is None and keys:
        return None  # not chosen yet
    return engine_check(inputs, {}, cam_core.checks.run_config, ctx.dataset, key)[1] and key or None


def newest_run(dataset, keys=None):
    """The most recent of the dataset's CAM runs (None when it has none)."""
    import datetime

    import cam_core

    keys = cam_core.list_cam_runs(dataset) if keys is None else keys
    started = {k: dataset.get_run_info(k).timestamp or datetime.datetime.min for k in keys}
    return max(keys, key=started.get) if keys else None


def run_field(ctx, inputs, run_key):
    """The ``field`` input: one of the run's heatmap fields (default its first)."""
    fields = list(ctx.dataset.get_run_info(run_key).config.fields)
    inputs.enum("field", fields, default=fields[0], label="Heatmap field",
                description="One map of the run (a method on a layer)", view=dropdown(fields))
    return ctx.params.get("field") or fields[0]


def score(ctx, inputs, view, field, default, description):
    """The ``score`` input: one of the scores the maps of ``field`` carry."""
    import cam_core

    present = cam_core.checks.map_scores(view, field)
    default = default if default in present else (present[0] if present else None)
    inputs.enum("score", present, default=default, required=True, label="Score",
                description=description, view=dropdown(present))
    return ctx.params.get("score") or default


def run_map_score(ctx, inputs, action, score_description, default_target=None):
    """The start of the forms over one map of a run: what to act on (the
    dataset, the current view or the selected samples), the run, one of its
    heatmap fields and one of that field's scores (default ``mass_inside``).

    Args:
        default_target (None): the target preselected in the App (e.g.
            ``"DATASET"``); None: FiftyOne's default, the most selective one

    Returns:
        ``(view, run_key, field, score)``: the target view and the choices
        (each None until there is one)
    """
    inputs.view_target(ctx, action_description=action, default_target=default_target)
    if default_target:
        preselect_target(ctx, default_target)
    view = ctx.target_view()
    key = run_key(ctx, inputs, "Run", preselect=True)
    field = key and run_field(ctx, inputs, key)
    chosen = field and score(ctx, inputs, view, field, "mass_inside", score_description)
    return view, key, field, chosen


def preselect_target(ctx, default_target):
    """Takes the form's preselected target when no ``view_target`` was sent,
    so that the form's first rendering, its check and the execution all act
    on what the form shows selected (FiftyOne's own rule for no choice is
    the current view)."""
    if chosen_target(ctx) is None:
        default = types.Object().view_target(ctx, default_target=default_target).default
        if default is not None:
            # where FiftyOne carries the choice (ctx.target_view() reads it there)
            ctx.request_params["view_target"] = default


def chosen_target(ctx):
    """The ``view_target`` sent with the request (FiftyOne moves it from the
    operator's parameters to the request's), or None."""
    return ctx.params.get("view_target") or ctx.request_params.get("view_target")


def target_description(ctx, view):
    """What a form acts on, in words: ``"the whole dataset 'name'"``, ``"the
    current view"`` or ``"the selected samples"``."""
    target = chosen_target(ctx)
    if target is None:  # no choice sent: FiftyOne's rule, the view when there is one
        target = collection_target(view)
    whole = f"the whole dataset '{view._root_dataset.name}'"
    return {
        "DATASET": whole,
        "DATASET_VIEW": whole,
        "CURRENT_VIEW": "the current view",
        "SELECTED_SAMPLES": "the selected samples",
        "BASE_VIEW": "the base view",
    }.get(target, "the chosen view")


def collection_target(sample_collection):
    """The ``view_target`` of a Python call on ``sample_collection``: the
    view it is, or its whole dataset (an explicit choice, whatever a form
    would preselect)."""
    import fiftyone.core.view as fov

    whole = not isinstance(sample_collection, fov.DatasetView) or (
        sample_collection == sample_collection._root_dataset.view())
    return "DATASET" if whole else "CURRENT_VIEW"


def label_field(inputs, name, allowed, label, description, required=False):
    """An input naming one of the ``allowed`` label fields."""
    inputs.str(name, required=required, label=label, description=description, view=dropdown(allowed))
