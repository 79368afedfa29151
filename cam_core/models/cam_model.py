"""A model ready for CAMs: its module, transforms and classes, from whatever
object the user has (a module, a FiftyOne ``TorchImageModel``, a CamModel)."""
import logging
import sys
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from ..engine.detection import resizes_inside
from ..errors import CamArgumentError, CamArgumentTypeError

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
        suggested_layers: the layers to explain when none are named (module
            paths), or None for the engine's suggestion from the dry forward;
            set by a family's adapter that knows its model better
        vocabulary: a zero-shot model's classes as text prompts
            (:class:`cam_core.models.adapters.zeroshot.Vocabulary`): classes
            given by name are embedded, ``target="text:<prompt>"`` adds one;
            None for a model whose classes are fixed
    """

    module: nn.Module
    transforms: object
    classes: list = None
    name: str = None
    kwargs: dict = field(default_factory=dict)
    default_transforms: bool = False  # no transforms were given: ImageNet's were assumed
    suggested_layers: list = None
    vocabulary: object = None


def recordable(kwargs):
    """Loading arguments as a run records them: plain values kept, others as their repr."""
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v) for k, v in kwargs.items()}


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
            ``TorchImageModel`` (its ``_model``, ``transforms``, and its class
            names in output order: from its ``mask_targets`` when they map
            output indices to names, as a zoo segmenter's do, else its
            ``classes``). A ``torch.compile``d module is replaced by its
            original module (hooks need eager mode; layer names are the
            original's: ``layer4``, not ``_orig_mod.layer4``)
        transforms (None): overrides the model's transforms (a callable, or
            a Hugging Face image processor); without any,
            a detector that resizes inside (torchvision's) gets the whole
            image as floats in [0, 1], any other model ImageNet's
            preprocessing (with a warning)
        classes (None): overrides the model's class names; a zero-shot
            model's classes (OpenCLIP, CLIP): the names its prompts are made of

    Returns:
        a :class:`CamModel`

    Raises:
        CamArgumentError: (``model``) for a model of another type, or one
            with a ``torch.compile``d submodule
    """
    from . import adapters  # a family's adapter imports this module

    adapted = None if isinstance(model, CamModel) else adapters.adapt(model, transforms)
    if adapted is not None:
        out = adapted
    elif isinstance(model, CamModel):
        out = replace(model, kwargs=dict(model.kwargs),
                      suggested_layers=None if model.suggested_layers is None else list(model.suggested_layers))
        if model.vocabulary is not None:  # the copy's classes change apart from the original's
            out.vocabulary = model.vocabulary.copy()
            out.module = out.vocabulary.head
    elif isinstance(model, nn.Module):
        module = uncompiled(model)
        out = CamModel(module, getattr(model, "transforms", None), getattr(model, "classes", None), type(module).__name__)
    elif isinstance(getattr(model, "_model", None), nn.Module):  # FiftyOne TorchImageModel
        out = CamModel(model._model, getattr(model, "transforms", None), output_order_classes(model), type(model).__name__)
    else:
        raise CamArgumentTypeError(
            "model",
            f"model must be a torch.nn.Module, a FiftyOne TorchImageModel, a CamModel or a "
            f"name like 'torchvision:resnet50'; got {type(model).__name__}"
        )
    out.module = uncompiled(out.module)
    if classes is None and adapted is not None and not out.classes:
        # an adapted module's own ``classes``, as for any module: how a registered factory names
        # a zero-shot model's classes (the adapter finds none in an open_clip object)
        own = getattr(model, "classes", None)
        classes = list(own) if isinstance(own, (list, tuple)) and own else None
    if transforms is not None:
        # a family's preprocessing object (a Hugging Face image processor) as transforms
        out.transforms = adapters.adapt_transforms(transforms) or transforms
        out.default_transforms = False
    if classes is not None and out.vocabulary is not None:  # a zero-shot model: the names become its prompts
        out.vocabulary.set_classes(classes)
        out.classes = list(out.vocabulary.classes)
    elif classes is not None:
        out.classes = list(classes)
    if out.transforms is None or not callable(out.transforms):
        # a timm module knows its own preprocessing (a 256 px model refuses 224 px)
        out.transforms = timm_transforms(out.module)
    if out.transforms is None and resizes_inside(out.module):
        # a detector that resizes and normalises inside takes the whole image as floats in [0, 1]
        from torchvision.transforms import v2 as T

        out.transforms = T.Compose([T.PILToTensor(), T.ToDtype(torch.float32, scale=True)])
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


def output_order_classes(model):
    """A FiftyOne ``TorchImageModel``'s class names indexed like its outputs.

    Its ``classes`` are sorted by name when they come from ``mask_targets``
    (a zoo segmenter: 'aeroplane', 'background', ...); its ``mask_targets``
    map mask values to names, and a mask value is the output index (plus 1
    with ``no_background_cls``). Other models, and mask targets that are not
    indices (RGB colours), keep ``classes``.
    """
    classes = getattr(model, "classes", None)
    targets = getattr(model, "mask_targets", None)
    if not isinstance(targets, dict) or not targets:
        return None if classes is None else list(classes)
    try:
        values = {int(k): v for k, v in targets.items()}  # int keys, or digit strings from a JSON config
    except (TypeError, ValueError):
        return None if classes is None else list(classes)
    offset = 1 if _no_background_cls(model) else 0
    values = {k - offset: v for k, v in values.items() if k >= offset}
    if not values:
        return None if classes is None else list(classes)
    # an index the mask targets skip is named by its number, as cam_core names unnamed outputs
    return [str(values[i]) if i in values else str(i) for i in range(max(values) + 1)]


def _no_background_cls(model):
    flag = getattr(getattr(model, "_output_processor", None), "no_background_cls", None)
    if flag is None:
        args = getattr(getattr(model, "config", None), "output_processor_args", None) or {}
        flag = args.get("no_background_cls", False)
    return bool(flag)


def uncompiled(module):
    """The original module of a ``torch.compile``d one (``OptimizedModule``), else ``module``.

    CAMs hook the model's layers and differentiate with respect to their
    outputs, which needs eager mode; the original module shares the compiled
    one's parameters and gives the same scores.

    Raises:
        CamArgumentError: (``model``) for a model with a compiled submodule:
            its layers cannot be hooked, and cam_core does not change the model
    """
    compiled = _optimized_module_type()
    if compiled is None:  # nothing was ever compiled in this process
        return module
    if isinstance(module, compiled):
        logger.warning(
            "the model is a torch.compile'd module: CAMs run on its original, uncompiled module (hooks need "
            "eager mode); its layers are named as in the original ('layer4', not '_orig_mod.layer4')"
        )
        return uncompiled(module._orig_mod)
    inner = next((name for name, m in module.named_modules() if name and isinstance(m, compiled)), None)
    if inner is not None:
        raise CamArgumentError(
            "model",
            f"submodule '{inner}' is a torch.compile'd module (OptimizedModule): layers inside compiled code "
            f"cannot be hooked for CAMs. Pass the model without compiling its parts (compiling the whole "
            f"model is fine: cam_core then uses the original module)",
        )
    return module


def _optimized_module_type():
    # torch._dynamo is a heavy import; a compiled module exists only once it was imported
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")
    return getattr(eval_frame, "OptimizedModule", None)
