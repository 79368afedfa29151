"""Models by name: ``torchvision:<name>``, ``timm:<name>``, FiftyOne zoo
models, and names registered in this process or in the database."""
import inspect

from ..engine.detection import detector_num_classes
from ..errors import CamArgumentError
from . import adapters, registry
from .cam_model import CamModel, from_object, recordable, timm_transforms


def load_model(source, **kwargs):
    """Loads a model by name.

    Args:
        source: ``"torchvision:<name>"`` (``torchvision.models.get_model``;
            ``weights`` defaults to ``"DEFAULT"``, pass ``weights=None`` for
            random weights: a detector's backbone too, unless ``weights_backbone`` is given), ``"timm:<name>"`` (``timm.create_model``;
            ``pretrained`` defaults to True), ``"ultralytics:<name>"`` (YOLO),
            ``"hf:<repo or folder>"`` (transformers), ``"open_clip:<name>"``
            (OpenCLIP; ``pretrained`` a tag, None: random weights), a FiftyOne zoo model name, a
            name given to :func:`register_model` in this process, or one given
            to :func:`cam_core.register_factory` (in the database: built here
            from its factory, when this process allows its module:
            ``FIFTYONE_CAM_FACTORY_MODULES``)
        **kwargs: passed to the library's loader

    Returns:
        a :class:`CamModel`
    """
    here = registry.process_model(source)
    if here is not None:
        return here
    lib, _, name = source.partition(":")
    if not name:
        entry = registry.registered_factories().get(source)
        if entry is not None:
            return registry.build(source, entry)
    adapted = adapters.load(source, kwargs) if name else None
    if adapted is not None:
        return adapted
    if lib == "torchvision" and name:
        return _load_torchvision(name, kwargs)
    if lib == "timm" and name:
        return _load_timm(name, kwargs)
    if lib in ("torchvision", "timm"):
        raise CamArgumentError("model", f"model '{source}' has no name after '{lib}:'")
    try:
        import fiftyone.zoo as foz

        zoo_names = foz.list_zoo_models()
    except Exception:  # the zoo manifest may be unreachable
        zoo_names = []
    if source in zoo_names:
        return from_object(foz.load_zoo_model(source, **kwargs))
    registered = registry.registered_models() + list(registry.registered_factories())
    raise CamArgumentError(
        "model",
        f"unknown model '{source}': use 'torchvision:<name>', 'timm:<name>', a FiftyOne zoo "
        f"model name, or a name registered with cam_core.register_model or cam_core.register_factory "
        f"(registered: {', '.join(registered) or 'none'})",
    )


def _load_torchvision(name, kwargs):
    import torchvision

    kwargs = dict(kwargs)
    kwargs.setdefault("weights", "DEFAULT")
    try:
        builder = torchvision.models.get_model_builder(name)
        if kwargs["weights"] is None and "weights_backbone" in inspect.signature(builder).parameters:
            # random weights mean the whole model's: a detector's backbone would otherwise be downloaded
            kwargs.setdefault("weights_backbone", None)
        module = torchvision.models.get_model(name, **kwargs)
    except ValueError as e:
        raise CamArgumentError("model", f"torchvision has no model '{name}': {e}") from None
    # the transforms and category names of the model's weights (or of its
    # default weights when loaded without any: same architecture, same outputs)
    enum = torchvision.models.get_model_weights(name)
    weights = kwargs["weights"]
    weights = enum.DEFAULT if weights is None else enum.verify(weights)
    classes = weights.meta.get("categories")
    return CamModel(module, weights.transforms(), _matching(classes, module), f"torchvision:{name}", recordable(kwargs))


def _load_timm(name, kwargs):
    import timm

    kwargs = dict(kwargs)
    kwargs.setdefault("pretrained", True)
    module = timm.create_model(name, **kwargs)
    transforms = timm_transforms(module)
    classes = None
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(module)
        if subset:
            classes = ImageNetInfo(subset).label_descriptions(as_dict=False)
    except Exception:  # older timm or a model not trained on ImageNet
        classes = None
    return CamModel(module, transforms, _matching(classes, module), f"timm:{name}", recordable(kwargs))


def _matching(classes, module):
    # class names only count when they match the head's size
    n = getattr(module, "num_classes", None) or detector_num_classes(module)
    if classes is not None and n is not None and len(classes) != n:
        return None
    return list(classes) if classes is not None else None


def resolve_model(model, transforms=None, classes=None):
    """A :class:`CamModel` from whatever the user passed.

    Args:
        model: a :class:`CamModel`, a ``torch.nn.Module`` (its ``transforms``
            and ``classes`` attributes are used when present), a FiftyOne
            ``TorchImageModel`` (its ``_model``, ``transforms``, ``classes``),
            or a name for :func:`load_model`
        transforms (None): overrides the model's transforms
        classes (None): overrides the model's class names

    Returns:
        a :class:`CamModel`
    """
    if isinstance(model, str):
        model = load_model(model)
    return from_object(model, transforms, classes)
