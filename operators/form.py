"""The ``compute_cams`` form, built from the dataset and the chosen model.

Every choice the form offers is one the engine accepts: layers come from the
model's dry forward, label fields from the dataset's schema, classes from the
model. Values that arrive from elsewhere (a Python call, a stale form after
the model changed) are checked here, and the form says what is wrong before
anything runs: the property is marked invalid with a message, which blocks
execution in the App and in ``foo.execute_operator``.
"""
import difflib

import fiftyone.operators.types as types

from . import models
from .choices import dropdown, fields_of, invalid
from .params import DEFAULTS

# views larger than this are offered delegated execution by default
LARGE_VIEW = 100


def build(ctx, inputs):
    """Adds the form's properties to ``inputs``.

    Returns:
        True when every choice is complete and valid
    """
    inputs.view_target(ctx, action_description="Compute maps for")
    view = ctx.target_view()
    if not _check_view(inputs, view):
        return False
    # what the sections settle for the ones after them: layers, methods, fields
    s = {"num_samples": len(view)}

    facts = _model(ctx, inputs)
    if facts is None:
        return False

    ok = _layers(ctx, inputs, facts, s)
    ok = _methods(ctx, inputs, facts, s) and ok
    ok = _target(ctx, inputs, view, facts) and ok
    ok = _run_key(ctx, inputs, view, s) and ok
    _compute(ctx, inputs)
    _storage(ctx, inputs, view)
    ok = _scores(ctx, inputs, view, facts) and ok
    if ok:
        _summary(inputs, s)
    return ok


def _error(inputs, name, message):
    # an Error view marked invalid: shown in the form and blocks execution
    prop = inputs.view(name, types.Error(label=message))
    invalid(prop, message)
    return prop


def _check_view(inputs, view):
    if view.media_type != "image":
        _error(inputs, "media_error", f"CAMs explain images; this collection holds {view.media_type} samples")
        return False
    if len(view) == 0:
        _error(inputs, "empty_error", "there is no sample to explain in this view")
        return False
    return True


def _model(ctx, inputs):
    names = models.registered_names()
    default_source = "registered" if names else "torchvision"
    tabs = types.TabsView()
    for key, label in models.SOURCES.items():
        tabs.add_choice(key, label=label)
    inputs.enum(
        "model_source", tabs.values(), default=default_source, label="Model",
        description="Where the model comes from", view=tabs,
    )
    source = ctx.params.get("model_source") or default_source

    try:
        choices = models.model_choices(source)
    except Exception as e:  # a library that cannot list its models here
        _error(inputs, "model_error", f"cannot list {source} models: {e}")
        return None
    default = choices[0] if source == "registered" and choices else None
    if source == "registered":
        view = types.DropdownView()
        process_only = set(models.process_only_names())
        for name in choices:
            caption = "this Python process only" if name in process_only else None
            view.add_choice(name, label=name, description=caption)
        description = (
            "Models registered with the register_cam_model operator (a factory "
            "every process can import) or cam_core.register_model"
        )
    else:
        view = types.AutocompleteView(allow_user_input=False)
        for name in choices:
            view.add_choice(name, label=name)
        description = {
            "torchvision": "torchvision.models: classifiers and segmenters",
            "timm": "timm.create_model names",
            "zoo": "FiftyOne zoo models for classification or segmentation (Torch)",
        }[source]
    # not `required`: the App validates a new form before it fills in defaults
    prop = inputs.enum("model", choices, default=default, required=default is None, label="Model name",
                       description=description, view=view)
    if source == "registered" and not choices:
        invalid(prop, "no model is registered: register one with the register_cam_model operator, or choose another source")
        return None
    if source in ("torchvision", "timm"):
        inputs.bool(
            "pretrained", default=True, label="Pretrained weights",
            description="Downloaded on first use. Untick for random weights (nothing to download)",
        )
    name = ctx.params.get("model", default)
    if not name:
        return None
    if name not in choices:
        return invalid(prop, f"'{name}' is not a {models.SOURCES[source]} model") or None
    pretrained = bool(ctx.params.get("pretrained", True))
    try:
        facts = models.describe(source, name, pretrained)
    except ValueError as e:
        return invalid(prop, str(e)) or None

    if source == "registered" and name in models.process_only_names():
        message = (
            f"'{name}' was registered with cam_core.register_model in this process only: "
            f"delegated workers cannot build it. Register a factory with register_cam_model"
        )
        if ctx.requesting_delegated_execution:
            return invalid(prop, message) or None
        inputs.view("process_only", types.Warning(label=message))
    kind = "segmentation model" if facts.segmenter else "classifier"
    named = f"{len(facts.classes)} named classes" if facts.classes is not None else f"{facts.num_outputs} outputs, no class names"
    inputs.view("model_facts", types.Notice(label=f"{kind}, {named}, {len(facts.layers)} explainable layers"))
    return facts


def _shape(info):
    return "x".join(str(d) for d in info.shape[1:])


def _channels(info):
    return info.shape[3] if info.layout == "nhwc" else info.shape[1] if info.layout == "nchw" else info.shape[2]


def _layers(ctx, inputs, facts, s):
    view = types.DropdownView(multiple=True)
    for info in facts.layers:
        suggested = " (suggested)" if info.name in facts.default_layers else ""
        view.add_choice(info.name, label=f"{info.name} [{_shape(info)}]{suggested}")
    prop = inputs.list(
        "layers", types.String(), default=list(facts.default_layers), label="Layers",
        description=f"Layers with a spatial output, in forward order; suggested: {', '.join(facts.default_layers)}",
        view=view,
    )
    layers = ctx.params.get("layers")
    if layers is None:  # a Python call that leaves the choice to the model
        layers = list(facts.default_layers)
    s["layers"] = layers
    if not layers:
        return invalid(prop, f"choose at least one layer (suggested: {', '.join(facts.default_layers)})")
    names = facts.layer_names
    unknown = [l for l in layers if l not in names]
    if unknown:
        near = difflib.get_close_matches(unknown[0], names, n=3, cutoff=0.4)
        hint = f"; closest: {', '.join(near)}" if near else ""
        return invalid(prop, f"not an explainable layer of this model: {', '.join(map(str, unknown))}{hint}")
    return True


def _methods(ctx, inputs, facts, s):
    import cam_core

    view = types.DropdownView(multiple=True)
    for name, m in cam_core.METHODS.items():
        label = m.class_name
        if m.costly:
            label += " (costly: one forward per channel)"
        elif m.kind == "fullgrad":
            label += " (ignores layers)"
        view.add_choice(name, label=label)
    prop = inputs.list(
        "methods", types.String(), default=list(DEFAULTS["methods"]), label="Methods",
        description="grad-cam methods; the gradient methods share one forward and one backward per batch",
        view=view,
    )
    chosen = ctx.params.get("methods")
    if chosen is None:
        chosen = list(DEFAULTS["methods"])
    if not chosen:
        return invalid(prop, "choose at least one method")
    methods = [cam_core.ALIASES.get(str(m).lower(), str(m).lower()) for m in chosen]
    unknown = [c for c, m in zip(chosen, methods) if m not in cam_core.METHODS]
    if unknown:
        return invalid(prop, f"unknown method(s) {', '.join(map(str, unknown))}; valid: {', '.join(cam_core.METHODS)}")
    methods = list(dict.fromkeys(methods))
    s["methods"] = methods
    if facts.segmenter and "finercam" in methods:
        return invalid(prop, "FinerCAM compares classifier scores; it does not apply to segmentation models")
    costly = [cam_core.METHODS[m].class_name for m in methods if cam_core.METHODS[m].costly]
    if costly and s.get("layers"):
        by_name = {i.name: i for i in facts.layers}
        channels = sum(_channels(by_name[l]) for l in s["layers"] if l in by_name)
        inputs.view("costly_warning", types.Warning(
            label=f"{' and '.join(costly)}: one extra forward per channel",
            description=(
                f"{channels} channels in the chosen layers: about {channels} extra forwards per image "
                f"and method. Delegated execution is recommended"
            ),
        ))
    return True


def _target(ctx, inputs, view, facts):
    import fiftyone as fo

    want = fo.Segmentation if facts.segmenter else fo.Classification
    label_fields = fields_of(view, want)
    radio = types.RadioGroup()
    radio.add_choice(
        "prediction", label="Prediction",
        description="The model's top class" + (" (most frequent predicted class, over its region)" if facts.segmenter else ""),
    )
    radio.add_choice(
        "label_field", label="A label field",
        description=f"Each sample's {want.__name__} label" + ("" if label_fields else f" (this dataset has no {want.__name__} field)"),
    )
    radio.add_choice("class", label="A class", description="The same class for every sample")
    inputs.enum("target", radio.values(), default="prediction", label="Explain", view=radio)
    target = ctx.params.get("target") or "prediction"

    if target == "label_field":
        prop = inputs.str(
            "label_field", required=True, label="Label field",
            description=f"A {want.__name__} field" + (" (its region is explained)" if facts.segmenter else ", mapped to the model's classes by name"),
            view=dropdown(label_fields),
        )
        name = ctx.params.get("label_field")
        if not label_fields:
            return invalid(prop, f"this dataset has no {want.__name__} field for a {'segmentation model' if facts.segmenter else 'classifier'}")
        if not name:
            return False
        ok = _check_label_field(prop, view, name, want, label_fields, facts)
        if ok and facts.segmenter:
            ok = _class_input(ctx, inputs, facts, required=False,
                              description="The class whose ground-truth region is explained (default: each mask's most frequent class)")
        return ok
    if target == "class":
        return _class_input(ctx, inputs, facts, required=True, description="Every map explains this class")
    return True


def _check_label_field(prop, view, name, want, label_fields, facts):
    schema = view.get_field_schema()
    if name not in schema:
        return invalid(prop, f"there is no field '{name}'; {want.__name__} fields: {', '.join(label_fields) or 'none'}")
    doc_type = getattr(schema[name], "document_type", None)
    if doc_type is not want:
        held = getattr(doc_type, "__name__", type(schema[name]).__name__)
        kind = "segmentation model" if facts.segmenter else "classifier"
        return invalid(
            prop,
            f"'{name}' holds {held} labels; a {kind} needs a {want.__name__} field: {', '.join(label_fields) or 'none here'}",
        )
    if not facts.segmenter:
        if facts.classes is None:
            return invalid(prop, "labels are mapped to the model's classes by name, but this model has no class names")
        unknown = sorted(set(view.distinct(f"{name}.label")) - {str(c) for c in facts.classes})
        if unknown:
            return invalid(prop, f"labels {unknown[:5]} of '{name}' are not among the model's classes")
    return True


def _class_input(ctx, inputs, facts, required, description):
    if facts.classes is not None:
        view = types.AutocompleteView(allow_user_input=False)
        for c in facts.classes:
            view.add_choice(str(c), label=str(c))
    else:
        view = types.View()
        description += f" (an output index, 0 to {facts.num_outputs - 1}: the model has no class names)"
    prop = inputs.str("target_class", required=required, label="Class", description=description, view=view)
    value = ctx.params.get("target_class")
    if value in (None, ""):
        return not required
    value = str(value)
    if facts.classes is not None and value in [str(c) for c in facts.classes]:
        return True
    if value.isdigit() and int(value) < facts.num_outputs:
        return True
    return invalid(prop, f"'{value}' is not a class of this model")


def _run_key(ctx, inputs, view, s):
    import cam_core

    dataset = view._root_dataset
    existing = dataset.list_runs()
    default = DEFAULTS["run_key"]
    i = 2
    while default in existing:
        default = f"{DEFAULTS['run_key']}_{i}"
        i += 1
    prop = inputs.str(
        "run_key", default=default, label="Run key",
        description="Names the run and prefixes its fields: `{run_key}_{method}_{layer}`",
    )
    key = ctx.params.get("run_key", default)
    if not key:
        return invalid(prop, f"a run needs a key, e.g. '{default}'")
    if not isinstance(key, str) or not key.isidentifier():
        return invalid(prop, f"'{key}' is not a valid run key: use letters, digits and underscores, not starting with a digit")

    old_fields = set()
    choice = None
    if key in existing:
        config = dataset.get_run_info(key).config
        if not isinstance(config, cam_core.runs.CamRunConfig):
            return invalid(prop, f"run key '{key}' belongs to another kind of run; choose another key")
        old_fields = set(getattr(config, "fields", {}) or {})
        radio = types.RadioGroup()
        radio.add_choice("overwrite", label="Overwrite", description="Delete its maps and compute them again")
        radio.add_choice("continue", label="Continue", description="Compute only the samples still missing one of its maps")
        inputs.enum("existing_run", radio.values(), label=f"Run '{key}' exists", view=radio)
        choice = ctx.params.get("existing_run")
        if choice not in radio.values():
            return invalid(prop, f"run '{key}' already exists: choose Overwrite or Continue below, or another key")

    fields = {}
    for m in s.get("methods", []):
        for layer in ([None] if m == "fullgrad" else s.get("layers", [])):
            fields[cam_core.field_name(key, m, layer)] = (m, layer)
    s["fields"] = list(fields)
    if choice == "continue" and set(fields) != old_fields:
        return invalid(prop, f"Continue needs the run's methods and layers; it has fields {', '.join(sorted(old_fields))}")
    schema = dataset.get_field_schema()
    taken = [f for f in fields if f in schema and f not in old_fields]
    if taken:
        return invalid(prop, f"fields {', '.join(taken)} already exist and are not this run's; choose another key")
    return True


def _compute(ctx, inputs):
    import torch

    inputs.int("batch_size", default=DEFAULTS["batch_size"], min=1, label="Batch size",
               description="Images per forward and backward; lower it to use less memory")
    inputs.int("num_workers", default=0, min=0, label="Workers",
               description="DataLoader processes decoding images (delegated runs; immediate runs decode in the App server)")
    devices = types.RadioGroup()
    devices.add_choice("cpu", label="cpu")
    if torch.cuda.is_available():
        devices.add_choice("cuda", label="cuda", description=torch.cuda.get_device_name(0))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.add_choice("mps", label="mps")
    default = "cuda" if "cuda" in devices.values() else "cpu"
    prop = inputs.enum("device", devices.values(), default=default, label="Device", view=devices)
    prop.error_message = f"choose one of: {', '.join(devices.values())}"


def _storage(ctx, inputs, view):
    from cam_core.storage import default_output_dir

    radio = types.RadioGroup()
    radio.add_choice("png", label="PNG files", description="8-bit PNG per map, referenced by map_path (small database)")
    radio.add_choice("inline", label="In the database", description="8-bit arrays inside the samples")
    inputs.enum("storage", radio.values(), default="png", label="Storage", view=radio)
    if (ctx.params.get("storage") or "png") == "png":
        key = ctx.params.get("run_key") or DEFAULTS["run_key"]
        inputs.str("output_dir", required=False, label="Output directory",
                   description=f"Where the PNG maps go; default {default_output_dir(view._root_dataset.name, key)}")


def _scores(ctx, inputs, view, facts):
    import fiftyone as fo

    objects = fields_of(view, fo.Detections, fo.Polylines, fo.Segmentation)
    if objects:
        prop = inputs.str(
            "gt_field", required=False, label="Score against objects",
            description="Optional: each map also gets mass_inside, pointing_hit and iou against this field's objects",
            view=dropdown(objects),
        )
        gt = ctx.params.get("gt_field")
        if gt and gt not in objects:
            return invalid(prop, f"'{gt}' is not a Detections, Polylines or Segmentation field: {', '.join(objects)}")
    if not facts.segmenter:
        inputs.bool("faithfulness", default=False, label="Faithfulness (ROAD)",
                    description="Two extra forwards per map and batch")
    elif ctx.params.get("faithfulness"):
        prop = inputs.bool("faithfulness", default=False, label="Faithfulness (ROAD)")
        return invalid(prop, "faithfulness (ROAD) is computed for classifiers only")
    return True


def _summary(inputs, s):
    n, fields = s["num_samples"], s["fields"]
    inputs.view("summary", types.Notice(
        label=f"{n} sample(s) x {len(fields)} map(s): {', '.join(fields)}",
    ))


def recommend_delegation(ctx):
    """Whether delegated execution should be preselected: a large view, or a
    costly method."""
    import cam_core

    methods = ctx.params.get("methods") or []
    costly = any(getattr(cam_core.METHODS.get(str(m).lower()), "costly", False) for m in methods)
    try:
        n = len(ctx.target_view())
    except Exception:
        n = 0
    return costly or n > LARGE_VIEW
