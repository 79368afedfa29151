"""A model ready for CAMs: its module, transforms and classes, from whatever
object the user has (a module, a FiftyOne ``TorchImageModel``, a CamModel)."""
import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import CamArgumentTypeError

logger = logging.getLogger(__name__)


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
    default_transforms: bool = False  # no transforms were given: ImageNet's were assumed


def timm_transforms(module):
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


def from_object(model, transforms=None, classes=None):
    """A :class:`CamModel` (a copy: the caller's is not changed) from a model object.

    Args:
        model: a :class:`CamModel`, a ``torch.nn.Module`` (its ``transforms``
            and ``classes`` attributes are used when present), or a FiftyOne
            ``TorchImageModel`` (its ``_model``, ``transforms``, ``classes``)
        transforms (None): overrides the model's transforms
        classes (None): overrides the model's class names

    Returns:
        a :class:`CamModel`
    """
    if isinstance(model, CamModel):
        out = CamModel(model.module, model.transforms, model.classes, model.name, dict(model.kwargs),
                       model.default_transforms)
    elif isinstance(model, nn.Module):
        out = CamModel(model, getattr(model, "transforms", None), getattr(model, "classes", None), type(model).__name__)
    elif isinstance(getattr(model, "_model", None), nn.Module):  # FiftyOne TorchImageModel
        out = CamModel(model._model, getattr(model, "transforms", None), getattr(model, "classes", None), type(model).__name__)
    else:
        raise CamArgumentTypeError(
            "model",
            f"model must be a torch.nn.Module, a FiftyOne TorchImageModel, a CamModel or a "
            f"name like 'torchvision:resnet50'; got {type(model).__name__}"
        )
    if transforms is not None:
        out.transforms = transforms
    if classes is not None:
        out.classes = list(classes)
    if out.transforms is None or not callable(out.transforms):
        # a timm module knows its own preprocessing (a 256 px model refuses 224 px)
        out.transforms = timm_transforms(out.module)
    if out.transforms is None:
        # nothing to go on: the usual ImageNet preprocessing, recorded on the run
        from torchvision.transforms import v2 as T

        out.transforms = T.Compose(
            [T.Resize(256), T.CenterCrop(224), T.PILToTensor(), T.ToDtype(torch.float32, scale=True),
             T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
        )
        out.default_transforms = True
        logger.warning("model carries no transforms: using ImageNet preprocessing (resize 256, centre crop 224)")
    return out
