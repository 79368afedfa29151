"""A model's explainable layers, for users and forms."""
from PIL import Image

from . import layers as _layers
from .geometry import apply_transforms, transform_steps
from .models import resolve_model


def _probe(model, transforms=None, image_size=(224, 224)):
    cam_model = resolve_model(model, transforms=transforms)
    x, _ = apply_transforms(transform_steps(cam_model.transforms), Image.new("RGB", image_size, (128, 128, 128)))
    device = next(iter(cam_model.module.parameters())).device
    return cam_model.module, _layers.probe_model(cam_model.module, x[None].to(device))


def candidate_layers(model, transforms=None):
    """Layers of ``model`` that can be explained (with a spatial output), found
    with one dry forward.

    Args:
        model: anything :func:`cam_core.compute_cams` accepts as ``model``
        transforms (None): overrides the model's transforms

    Returns:
        a list of :class:`cam_core.LayerInfo` (``name``, ``shape``, ``layout``),
        in forward order
    """
    return list(_probe(model, transforms)[1].layers.values())


def default_layers(model, transforms=None):
    """Suggested layers, found with one dry forward:

    - a CNN: its last stage (a segmenter: its backbone's last stage);
    - a ViT whose head reads a class token (ViT, DeiT), and Swin: the
      ``norm1`` of the last block (``blocks.11.norm1``);
    - a ViT whose head pools the patch tokens (timm's ``global_pool`` is
      ``"avg"``, ``"max"`` or ``"map"``, or a ViT without prefix tokens): the
      tokens it pools, i.e. the final ``norm`` when it is a real norm on the
      tokens (``vit_medium_patch16_gap_256``), else the last block's output
      (``blocks.11``).

    Args:
        model: anything :func:`cam_core.compute_cams` accepts as ``model``
        transforms (None): overrides the model's transforms

    Returns:
        a list of module paths
    """
    module, probe = _probe(model, transforms)
    return _layers.default_layers(probe, module)
