"""``compute_cams`` parameters in their three shapes, translated in one place.

- Python arguments, as :func:`cam_core.compute_cams` takes them
  (``target="field:ground_truth"``, ``overwrite=True``, ...); which keywords
  exist and their defaults are read from its signature
  (:func:`cam_core.checks.compute_parameters`), never copied;
- form parameters, as the App sends them: the same names, except the model
  (``model_source`` + ``model`` + ``pretrained``), the target
  (``target="label_field"`` plus ``label_field``, or ``target="class"`` plus
  ``target_class``) and ``existing_run`` (``"overwrite"`` / ``"continue"``);
- the keyword arguments of :func:`cam_core.compute_cams`.

Python call -> form params -> compute_cams arguments gives the same call a
Python user would have written against the engine.
"""
from . import models

TARGETS = ("prediction", "label_field", "class")
EXISTING_RUN = ("overwrite", "continue")

# keywords that hold objects a form cannot carry (use a registered model instead)
_OBJECTS = ("transforms", "classes", "progress")
# keywords whose form shape differs: translated below
_TRANSLATED = ("target", "target_class", "overwrite", "skip_existing")
# the form's batch size (compute_cams' own default is an integer, kept for Python calls)
FORM_BATCH_SIZE = "auto"


def defaults():
    """``{keyword: default}`` of :func:`cam_core.compute_cams` that a form carries."""
    import cam_core

    return {k: v for k, v in cam_core.checks.compute_parameters().items() if k not in _OBJECTS}


def params_from_args(model, pretrained=True, num_shards=1, **kwargs):
    """The form parameters for a :func:`cam_core.compute_cams`-style call.

    ``model`` is a name (``"torchvision:resnet18"``, ``"timm:<name>"``, a zoo
    name or a registered name); ``pretrained=False`` loads a library model
    with random weights. The other keywords are :func:`cam_core.compute_cams`'
    and mean what they mean there; ``num_shards > 1`` queues the run as that
    many delegated jobs (:func:`cam_core.queue_cams`).

    Raises:
        TypeError: for a keyword compute_cams does not take, or one that holds
            an object (``transforms``, ``classes``)
    """
    args = defaults()
    unknown = [k for k in kwargs if k not in args]
    if unknown:
        raise TypeError(
            f"the compute_cams operator takes no argument {unknown[0]!r}; it takes {', '.join(args)} and "
            f"pretrained (objects such as transforms= and classes= come with a registered model)"
        )
    args.update(kwargs)
    source, name = models.parse_model(model)
    params = {"model_source": source, "model": name, "num_shards": num_shards}
    if source in ("torchvision", "timm"):
        params["pretrained"] = bool(pretrained)
    params.update({k: v for k, v in args.items() if k not in _TRANSLATED and v is not None})
    for key in ("layers", "methods"):
        if isinstance(params.get(key), str):
            params[key] = [params[key]]
    params["batch_size"] = str(params["batch_size"])  # the form's field is text: "auto" or a number
    params.update(_target_params(args["target"], args["target_class"]))
    if args["overwrite"] and args["skip_existing"]:
        raise ValueError("overwrite and skip_existing exclude each other: choose one")
    if args["overwrite"]:
        params["existing_run"] = "overwrite"
    elif args["skip_existing"]:
        params["existing_run"] = "continue"
    return params


def _target_params(target, target_class):
    if target is None or target == "prediction":
        out = {"target": "prediction"}
    elif isinstance(target, str) and target.startswith("field:"):
        out = {"target": "label_field", "label_field": target[len("field:"):]}
    elif isinstance(target, str) and target.startswith("text:"):
        out = {"target": "text", "text_prompt": target[len("text:"):]}
    else:
        if target_class is not None:
            raise ValueError("target_class applies to target='field:<Segmentation field>' only; a class target names its class itself")
        if isinstance(target, str) and target.startswith("class:"):
            target = target[len("class:"):]
        return {"target": "class", "target_class": str(target)}
    if target_class is not None:
        out["target_class"] = str(target_class)
    return out


def model_name(params):
    """The model's name as :func:`cam_core.compute_cams` and
    :func:`cam_core.queue_cams` take it, from the form's ``model_source`` and
    ``model`` (``"torchvision:resnet18"``, a registered or zoo name)."""
    source, name = params.get("model_source"), params.get("model")
    return f"{source}:{name}" if source in models.LIBRARIES else name


def compute_kwargs(params, facts):
    """The keyword arguments of :func:`cam_core.compute_cams` (all but
    ``samples`` and ``progress``) for form parameters.

    Args:
        params: the form parameters
        facts: the :class:`operators.models.ModelFacts` of the chosen model

    Returns:
        the keywords, ``model`` being the model's description (probed already)
    """
    kwargs = defaults()
    kwargs.update({k: params[k] for k in kwargs if k not in _TRANSLATED and params.get(k) not in (None, "")})
    kwargs["model"] = facts.description
    kwargs["batch_size"] = batch_size_value(kwargs["batch_size"])
    kwargs["overwrite"] = params.get("existing_run") == "overwrite"
    kwargs["skip_existing"] = params.get("existing_run") == "continue"
    target = params.get("target") or "prediction"
    if target == "label_field":
        kwargs["target"] = "field:" + str(params.get("label_field") or "")
        if facts.segmenter and params.get("target_class") not in (None, ""):
            kwargs["target_class"] = class_value(params["target_class"], facts)
    elif target == "class":
        kwargs["target"] = class_value(params.get("target_class"), facts)
    elif target == "text":
        kwargs["target"] = "text:" + str(params.get("text_prompt") or "")
    return kwargs


def form_property(param, params):
    """The form property that shows an error about ``compute_cams``' ``param``."""
    if param == "target":
        return {"label_field": "label_field", "class": "target_class", "text": "text_prompt"}.get(params.get("target"), "target")
    if param in ("overwrite", "skip_existing"):
        return "existing_run"
    if param in ("transforms", "classes"):
        return "model"
    return param


def batch_size_value(value):
    """A batch size as the engine takes it: the form's text field gives
    ``"auto"`` or digits (an integer); anything else is passed on for the
    engine's check to refuse."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value.strip() if isinstance(value, str) else value


def class_value(value, facts):
    """A class as the engine takes it: the name when the model has names,
    else the output index."""
    value = str(value)
    if facts.classes is not None and value in [str(c) for c in facts.classes]:
        return value
    if value.isdigit():
        return int(value)
    return value
