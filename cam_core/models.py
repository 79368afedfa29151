"""Turning what a user passes as ``model`` into a module, its transforms and classes."""
import logging
from dataclasses import dataclass, field

from torch import nn

logger = logging.getLogger(__name__)

# models registered by name for the App and delegated workers (see register_model)
_REGISTRY = {}


@dataclass
class CamModel:
    """A model ready for CAMs.

    Attributes:
        module: the ``torch.nn.Module``
        transforms: a callable from an RGB ``PIL.Image`` to a (3, H, W) tensor
        classes: class names indexed like the model's outputs, or None
        name: how the run records the model (e.g. ``"timm:deit_tiny_patch16_224"``)
        kwargs: the loading arguments, recorded on the run
    """

    module: nn.Module
    transforms: object
    classes: list = None
    name: str = None
    kwargs: dict = field(default_factory=dict)
    default_transforms: bool = False


def register_model(name, module, transforms=None, classes=None):
    """Makes a model available by name (e.g. ``"my-classifier"``) to
    :func:`load_model`, and so to the App's operator form in this process.

    Args:
        name: the name to register it under
        module: a ``torch.nn.Module``
        transforms (None): PIL image -> input tensor
        classes (None): class names

    Returns:
        the :class:`CamModel`
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"register_model needs a torch.nn.Module; got {type(module).__name__}")
    model = resolve_model(module, transforms=transforms, classes=classes)
    model.name = name
    _REGISTRY[name] = model
    return model


def registered_models():
    """Names registered with :func:`register_model`."""
    return list(_REGISTRY)


def load_model(source, **kwargs):
    """Loads a model by name.

    Args:
        source: ``"torchvision:<name>"`` (``torchvision.models.get_model``;
            ``weights`` defaults to ``"DEFAULT"``, pass ``weights=None`` for
            random weights), ``"timm:<name>"`` (``timm.create_model``;
            ``pretrained`` defaults to True), a FiftyOne zoo model name, a
            name given to :func:`register_model` in this process, or one given
            to :func:`cam_core.register_factory` (in the database: built here
            from its factory)
        **kwargs: passed to the library's loader

    Returns:
        a :class:`CamModel`
    """
    if source in _REGISTRY:
        return _REGISTRY[source]
    lib, _, name = source.partition(":")
    if not name:
        from .factories import build, registered_factories

        entry = registered_factories().get(source)
        if entry is not None:
            return build(source, entry)
    if lib == "torchvision" and name:
        return _load_torchvision(name, kwargs)
    if lib == "timm" and name:
        return _load_timm(name, kwargs)
    if lib in ("torchvision", "timm"):
        raise ValueError(f"model '{source}' has no name after '{lib}:'")
    try:
        import fiftyone.zoo as foz

        zoo_names = foz.list_zoo_models()
    except Exception:  # the zoo manifest may be unreachable
        zoo_names = []
    if source in zoo_names:
        return resolve_model(foz.load_zoo_model(source, **kwargs))
    raise ValueError(
        f"unknown model '{source}': use 'torchvision:<name>', 'timm:<name>', a FiftyOne zoo "
        f"model name, or a name registered with cam_core.register_model "
        f"(registered: {', '.join(_REGISTRY) or 'none'})"
    )


def _load_torchvision(name, kwargs):
    import torchvision

    kwargs = dict(kwargs)
    kwargs.setdefault("weights", "DEFAULT")
    try:
        module = torchvision.models.get_model(name, **kwargs)
    except ValueError as e:
        raise ValueError(f"torchvision has no model '{name}': {e}") from None
    # the transforms and category names of the model's weights (or of its
    # default weights when loaded without any: same architecture, same outputs)
    enum = torchvision.models.get_model_weights(name)
    weights = kwargs["weights"]
    weights = enum.DEFAULT if weights is None else enum.verify(weights)
    classes = weights.meta.get("categories")
    return CamModel(module, weights.transforms(), _matching(classes, module), f"torchvision:{name}", _recordable(kwargs))


def _timm_transforms(module):
    """A timm model's own evaluation preprocessing (its input size,
    interpolation, crop, mean and std, from its config), or None for a module
    that is not a timm model."""
    if not type(module).__module__.startswith("timm.") or not hasattr(module, "pretrained_cfg"):
        return None
    from timm.data import create_transform, resolve_data_config

    config = resolve_data_config({}, model=module)
    # a model built with another img_size keeps its config's size; a patch
    # embedding that only takes its own size says which one it is
    embed = getattr(module, "patch_embed", None)
    if getattr(embed, "strict_img_size", False) and getattr(embed, "img_size", None):
        config["input_size"] = (3, *embed.img_size)
    return create_transform(**config)


def _load_timm(name, kwargs):
    import timm

    kwargs = dict(kwargs)
    kwargs.setdefault("pretrained", True)
    module = timm.create_model(name, **kwargs)
    transforms = _timm_transforms(module)
    classes = None
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(module)
        if subset:
            classes = ImageNetInfo(subset).label_descriptions(as_dict=False)
    except Exception:  # older timm or a model not trained on ImageNet
        classes = None
    return CamModel(module, transforms, _matching(classes, module), f"timm:{name}", _recordable(kwargs))


def _matching(classes, module):
    # class names only count when they match the head's size
    n = getattr(module, "num_classes", None)
    if classes is not None and n is not None and len(classes) != n:
        return None
    return list(classes) if classes is not None else None


def _recordable(kwargs):
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v) for k, v in kwargs.items()}


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
    if isinstance(model, CamModel):
        out = CamModel(model.module, model.transforms, model.classes, model.name, dict(model.kwargs),
                       model.default_transforms)
    elif isinstance(model, nn.Module):
        out = CamModel(model, getattr(model, "transforms", None), getattr(model, "classes", None), type(model).__name__)
    elif isinstance(getattr(model, "_model", None), nn.Module):  # FiftyOne TorchImageModel
        out = CamModel(model._model, getattr(model, "transforms", None), getattr(model, "classes", None), type(model).__name__)
    else:
        raise TypeError(
            f"model must be a torch.nn.Module, a FiftyOne TorchImageModel, a CamModel or a "
            f"name like 'torchvision:resnet50'; got {type(model).__name__}"
        )
    if transforms is not None:
        out.transforms = transforms
    if classes is not None:
        out.classes = list(classes)
    if out.transforms is None or not callable(out.transforms):
        # a timm module knows its own preprocessing (a 256 px model refuses 224 px)
        out.transforms = _timm_transforms(out.module)
    if out.transforms is None:
        # nothing to go on: the usual ImageNet preprocessing, recorded on the run
        from torchvision.transforms import v2 as T
        import torch

        out.transforms = T.Compose(
            [T.Resize(256), T.CenterCrop(224), T.PILToTensor(), T.ToDtype(torch.float32, scale=True),
             T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
        )
        out.default_transforms = True
        logger.warning("model carries no transforms: using ImageNet preprocessing (resize 256, centre crop 224)")
    return out
