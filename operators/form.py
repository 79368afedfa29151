"""The ``compute_cams`` form, built from the dataset and the chosen model.

Every choice the form offers is one the engine accepts: layers come from the
model's dry forward, label fields from the dataset's schema, classes from the
model. The form checks nothing itself: the chosen values go through
:func:`cam_core.checks.check_compute_args`, the same check a Python call meets, and
the property it names is marked invalid with its message, which blocks
execution in the App and in ``foo.execute_operator``.
"""
import fiftyone.operators.types as types

from . import delegation, execution, models, params
from .choices import class_input, dropdown, engine_check, invalid, layer_picker, secret


def build(ctx, inputs):
    """Adds the form's properties to ``inputs``.

    Returns:
        True when every choice is complete and the engine accepts them
    """
    import cam_core

    inputs.view_target(ctx, action_description="Compute maps for")
    view = ctx.target_view()
    if not engine_check(inputs, {}, cam_core.checks.check_samples, view)[1]:
        return False
    facts = _model(ctx, inputs)
    if facts is None:
        return False
    _layers(inputs, facts)
    _methods(ctx, inputs, facts)
    complete = _target(ctx, inputs, view, facts)
    _run_key(ctx, inputs, view)
    execution.compute_fields(inputs)
    splittable = delegation.split(ctx, inputs)
    delegation.schedule_notice(inputs)
    _storage(ctx, inputs, view)
    _scores(ctx, inputs, view, facts)
    if not (complete and splittable):
        return False
    kwargs = params.compute_kwargs(ctx.params, facts)
    names = {p: params.form_property(p, ctx.params) for p in cam_core.checks.compute_parameters()}
    plan, ok = engine_check(inputs, names, cam_core.checks.check_compute_args, view, **kwargs)
    if ok:
        objects = f", objects in {plan.detections_field}" if getattr(plan, "detections_field", None) else ""
        count = view.count()
        inputs.view("summary", types.Notice(
            label=f"{count} sample(s) x {len(plan.fields)} map(s): {', '.join(plan.fields)}{objects}",
        ))
        reason = execution.delegation_reason(ctx, facts, count)
        if reason and not ctx.requesting_delegated_execution:
            inputs.view("delegation", types.Warning(label="Delegated execution recommended", description=reason))
    return ok


def _model(ctx, inputs):
    import cam_core

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
        prop = inputs.view("model_error", types.Error(label=f"cannot list {source} models: {e}"))
        invalid(prop, f"cannot list {source} models: {e}")
        return None
    default = choices[0] if source == "registered" and choices else None
    process_only = set(cam_core.checks.process_only_names())
    if source == "registered":
        view = types.DropdownView()
        for name in choices:
            caption = "this Python process only" if name in process_only else None
            view.add_choice(name, label=name, description=caption)
        description = (
            "Models registered with the register_cam_model operator (a factory "
            "every process can import) or cam_core.register_model"
        )
    else:
        # a Hugging Face name is typed (any hub repository or folder); the cached ones are offered
        view = types.AutocompleteView(allow_user_input=source == "hf")
        for name in choices:
            view.add_choice(name, label=name)
        description = models.DESCRIPTIONS[source]
    # not `required`: the App validates a new form before it fills in defaults
    if source == "hf":
        prop = inputs.str("model", required=True, label="Model name", description=description, view=view)
    else:
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
    try:
        facts = models.describe(source, name, bool(ctx.params.get("pretrained", True)))
    except ValueError as e:
        return invalid(prop, str(e)) or None
    if source == "registered" and name in process_only:
        if ctx.requesting_delegated_execution:
            return None if not engine_check(inputs, {}, cam_core.checks.check_shareable, name)[1] else facts
        inputs.view("process_only", types.Warning(label=f"'{name}' is registered in this Python process only"))
    kind = {"segmenter": "segmentation model"}.get(facts.kind, facts.kind)
    named = (f"{len(facts.classes)} named classes" if facts.classes is not None else
             f"{facts.num_outputs if facts.num_outputs is not None else 'unknown'} outputs, no class names")
    inputs.view("model_facts", types.Notice(label=f"{kind}, {named}, {len(facts.layers)} explainable layers"))
    return facts


def _layers(inputs, facts):
    inputs.list(
        "layers", types.String(), default=list(facts.default_layers), label="Layers",
        description=(f"Layers with a spatial output: the suggested ones ({', '.join(facts.default_layers)}), "
                     f"then the model's stages, then the modules inside them. Type to filter"),
        view=layer_picker(facts),
    )


def _methods(ctx, inputs, facts):
    import cam_core

    view = types.DropdownView(multiple=True)
    for name, m in cam_core.METHODS.items():
        if facts.detector and not m.fast:
            continue  # a detector is explained from activations and per-object gradients only
        label = m.class_name
        if m.costly:
            label += " (costly: one forward per channel)"
        elif m.kind == "fullgrad":
            label += " (ignores layers)"
        view.add_choice(name, label=label)
    default = params.defaults()["methods"]
    inputs.list(
        "methods", types.String(), default=[default], label="Methods",
        description="grad-cam methods; the gradient methods share one forward and one backward per batch" + (
            " (a detector: one backward per object rank)" if facts.detector else ""),
        view=view,
    )
    chosen = [cam_core.METHODS.get(cam_core.types.ALIASES.get(str(m).lower(), str(m).lower())) for m in ctx.params.get("methods") or []]
    costly = [m.class_name for m in chosen if m is not None and m.costly]
    if costly:
        by_name = {i.name: i for i in facts.layers}
        layers = ctx.params.get("layers") or facts.default_layers
        channels = sum(by_name[l].channels for l in layers if l in by_name)
        inputs.view("costly_warning", types.Warning(
            label=f"{' and '.join(costly)}: one extra forward per channel",
            description=(
                f"{channels} channels in the chosen layers: about {channels} extra forwards per image "
                f"and method. Delegated execution is recommended"
            ),
        ))


def _target(ctx, inputs, view, facts):
    """The target inputs; False while a choice they need is still empty."""
    import cam_core

    text = models.TARGET_TEXT[facts.kind]
    want = text["field_type"]
    label_fields = cam_core.checks.label_fields(view, want)
    threshold = ctx.params.get("score_threshold")
    threshold = params.defaults()["score_threshold"] if threshold is None else threshold
    radio = types.RadioGroup()
    radio.add_choice("prediction", label="Prediction", description=text["prediction"].format(threshold=threshold))
    radio.add_choice("label_field", label="A label field", description=text["label_field"] + (
        "" if label_fields else f" (this dataset has no {want} field)"))
    radio.add_choice("class", label="A class", description=text["class"])
    zero_shot = facts.model.vocabulary is not None
    if zero_shot:
        radio.add_choice("text", label="A text prompt", description=(
            "Any text, scored against each image by the model's text tower (a zero-shot model)"))
    inputs.enum("target", radio.values(), default="prediction", label="Explain", view=radio)
    target = ctx.params.get("target") or "prediction"

    if target == "text" and zero_shot:
        inputs.str("text_prompt", required=True, label="Prompt",
                   description="Written as the model reads it, e.g. 'a photo of a dog in the water'")
        return bool(str(ctx.params.get("text_prompt") or "").strip())

    if target == "label_field":
        inputs.str("label_field", required=True, label="Label field", description=text["field"],
                   view=dropdown(label_fields))
        if facts.segmenter:
            class_input(inputs, facts, required=False,
                        description="The class whose ground-truth region is explained (default: each mask's most frequent class)")
        return bool(ctx.params.get("label_field"))
    if target == "class":
        class_input(inputs, facts, required=True, description=text["class_input"])
        return ctx.params.get("target_class") not in (None, "")
    return True


def _run_key(ctx, inputs, view):
    import cam_core

    dataset = view._root_dataset
    existing = dataset.list_runs()
    base = params.defaults()["run_key"]
    default, i = base, 2
    while default in existing:
        default, i = f"{base}_{i}", i + 1
    inputs.str(
        "run_key", default=default, label="Run key",
        description="Names the run and prefixes its fields: `{run_key}_{method}_{layer}`",
    )
    if ctx.params.get("run_key", default) in cam_core.list_cam_runs(dataset):
        radio = types.RadioGroup()
        radio.add_choice("overwrite", label="Overwrite", description="Delete its maps and compute them again")
        radio.add_choice("continue", label="Continue", description="Compute only the samples still missing one of its maps")
        inputs.enum("existing_run", radio.values(), label=f"Run '{ctx.params.get('run_key', default)}' exists", view=radio)


def _storage(ctx, inputs, view):
    import cam_core

    radio = types.RadioGroup()
    radio.add_choice("png", label="PNG files", description="8-bit PNG per map, referenced by map_path (small database)")
    radio.add_choice("inline", label="In the database", description="8-bit arrays inside the samples")
    inputs.enum("storage", radio.values(), default="png", label="Storage", view=radio)
    root = cam_core.checks.output_root(secret(ctx, cam_core.checks.OUTPUT_ROOT_ENV))
    if (ctx.params.get("storage") or "png") == "png":
        key = ctx.params.get("run_key") or params.defaults()["run_key"]
        inputs.str("output_dir", required=False, label="Output directory",
                   description=f"Where the PNG maps go, under {root} (a relative path is taken from there); "
                               f"default {cam_core.checks.default_output_dir(view._root_dataset, key)}")
    # the App's users choose a folder under the root only: the server writes the files
    engine_check(inputs, {}, cam_core.checks.check_output_dir, ctx.params.get("output_dir"), root)


def _scores(ctx, inputs, view, facts):
    import cam_core

    if facts.detector:
        d = params.defaults()
        inputs.float("score_threshold", default=d["score_threshold"], label="Score threshold",
                     description="The detector's boxes explained (a prediction or a class target): those of at "
                                 "least this score")
        inputs.int("max_objects", default=d["max_objects"], min=1, label="Objects per image",
                   description="The most objects explained per image: one backward per object rank, shared by the batch")
    objects = cam_core.checks.object_fields(view)
    if objects:
        inputs.str(
            "gt_field", required=False, label="Score against objects",
            description="Optional: each map also gets mass_inside, pointing_hit and iou against this field's objects",
            view=dropdown(objects),
        )
    # a detector takes neither: shown only when set (a stale form, a Python call), for the engine's refusal
    description = "Two extra forwards per map and batch" + (" (classifiers only)" if facts.segmenter else "")
    if not facts.detector or ctx.params.get("faithfulness"):
        inputs.bool("faithfulness", default=False, label="Faithfulness (ROAD)", description=description)
    inputs.bool("eigen_smooth", default=False, label="Eigen smoothing", description="grad-cam's eigen_smooth")
    if not facts.detector or ctx.params.get("aug_smooth"):
        inputs.bool("aug_smooth", default=False, label="Augmentation smoothing",
                    description="grad-cam's aug_smooth: six augmented copies per image (six times the work)")
