"""``compute_cams`` parameters in their three shapes, translated in one place.

- Python arguments, as :func:`cam_core.compute_cams` takes them
  (``target="field:ground_truth"``, ``overwrite=True``, ...);
- form parameters, as the App sends them (``target="label_field"`` plus
  ``label_field="ground_truth"``, ``existing_run="overwrite"``, ...);
- the keyword arguments of :func:`cam_core.compute_cams`.

Python call -> form params -> compute_cams arguments gives the same call a
Python user would have written against the engine.
"""
from . import models

DEFAULTS = {
    "methods": ["gradcam"],
    "target": "prediction",
    "run_key": "cam",
    "batch_size": 16,
    "num_workers": 0,
    "device": "cpu",
    "storage": "png",
}

TARGETS = ("prediction", "label_field", "class")
EXISTING_RUN = ("overwrite", "continue")


def params_from_args(
    model,
    layers=None,
    methods="gradcam",
    target="prediction",
    run_key="cam",
    target_class=None,
    batch_size=16,
    num_workers=0,
    device="cpu",
    output_dir=None,
    storage="png",
    overwrite=False,
    skip_existing=False,
    gt_field=None,
    all_objects=False,
    iou_threshold=0.5,
    faithfulness=False,
    pretrained=True,
):
    """The form parameters for a :func:`cam_core.compute_cams`-style call.

    ``model`` is a name (``"torchvision:resnet18"``, ``"timm:<name>"``, a zoo
    name or a registered name); ``pretrained=False`` loads a library model
    with random weights. The other arguments mean what they mean for
    :func:`cam_core.compute_cams`.
    """
    source, name = models.parse_model(model)
    params = {"model_source": source, "model": name}
    if source in ("torchvision", "timm"):
        params["pretrained"] = bool(pretrained)
    if layers is not None:
        params["layers"] = [layers] if isinstance(layers, str) else list(layers)
    params["methods"] = [methods] if isinstance(methods, str) else list(methods)
    params.update(_target_params(target, target_class))
    if overwrite and skip_existing:
        raise ValueError("overwrite and skip_existing exclude each other: choose one")
    params["run_key"] = run_key
    if overwrite:
        params["existing_run"] = "overwrite"
    elif skip_existing:
        params["existing_run"] = "continue"
    params.update(batch_size=batch_size, num_workers=num_workers, device=device, storage=storage)
    if output_dir is not None:
        params["output_dir"] = output_dir
    if gt_field is not None:
        params.update(gt_field=gt_field, all_objects=bool(all_objects), iou_threshold=iou_threshold)
    params["faithfulness"] = bool(faithfulness)
    return params


def _target_params(target, target_class):
    if target is None or target == "prediction":
        out = {"target": "prediction"}
    elif isinstance(target, str) and target.startswith("field:"):
        out = {"target": "label_field", "label_field": target[len("field:"):]}
    else:
        if target_class is not None:
            raise ValueError("target_class applies to target='field:<Segmentation field>' only; a class target names its class itself")
        if isinstance(target, str) and target.startswith("class:"):
            target = target[len("class:"):]
        return {"target": "class", "target_class": str(target)}
    if target_class is not None:
        out["target_class"] = str(target_class)
    return out


def compute_kwargs(params, facts):
    """The keyword arguments of :func:`cam_core.compute_cams` (all but
    ``samples`` and ``progress``) for checked form parameters.

    Args:
        params: the form parameters
        facts: the :class:`operators.models.ModelFacts` of the chosen model
    """
    kwargs = {
        "model": facts.model,
        "layers": params.get("layers") or facts.default_layers,
        "methods": params.get("methods") or DEFAULTS["methods"],
        "run_key": params.get("run_key") or DEFAULTS["run_key"],
        "batch_size": int(params.get("batch_size") or DEFAULTS["batch_size"]),
        "num_workers": int(params.get("num_workers") or 0),
        "device": params.get("device") or DEFAULTS["device"],
        "storage": params.get("storage") or DEFAULTS["storage"],
        "output_dir": params.get("output_dir") or None,
        "overwrite": params.get("existing_run") == "overwrite",
        "skip_existing": params.get("existing_run") == "continue",
        "faithfulness": bool(params.get("faithfulness", False)),
    }
    target = params.get("target") or "prediction"
    if target == "label_field":
        kwargs["target"] = "field:" + params["label_field"]
        if facts.segmenter and params.get("target_class") not in (None, ""):
            kwargs["target_class"] = class_value(params["target_class"], facts)
    elif target == "class":
        kwargs["target"] = class_value(params["target_class"], facts)
    else:
        kwargs["target"] = "prediction"
    if params.get("gt_field"):
        kwargs["gt_field"] = params["gt_field"]
        kwargs["all_objects"] = bool(params.get("all_objects", False))
        kwargs["iou_threshold"] = float(params.get("iou_threshold") or 0.5)
    return kwargs


def class_value(value, facts):
    """A class as the engine takes it: the name when the model has names,
    else the output index."""
    value = str(value)
    if facts.classes is not None and value in [str(c) for c in facts.classes]:
        return value
    if value.isdigit():
        return int(value)
    return value
