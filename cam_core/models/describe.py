"""What can be explained in a model, from one dry forward: its layers, the
suggested ones, its classes and kind. For users, forms, and the checks of a run."""
from dataclasses import dataclass, field

import torch
from PIL import Image

from ..engine import defaults, layers as _layers
from ..engine.detection import MASKS, detector_num_classes, is_detection_output
from ..errors import CamArgumentError
from ..media.geometry import apply_transforms, transform_steps
from .sources import resolve_model


def _probe_input(cam_model, input_size=None):
    """What the model's transforms make of a plain grey 224x224 image, resized
    to ``input_size`` when one is given, as a batch of one."""
    x, _ = apply_transforms(transform_steps(cam_model.transforms), Image.new("RGB", (224, 224), (128, 128, 128)))
    x = x[None]
    if input_size is not None:
        x = torch.nn.functional.interpolate(x, size=input_size, mode="nearest")  # the image is one colour
    for t in list(cam_model.module.parameters()) + list(cam_model.module.buffers()):
        return x.to(t.device)
    return x


def _probe(model, transforms=None, classes=None, size=None):
    """The :class:`CamModel` of ``model``, its dry forward (a ``probe_model``
    record) on what its transforms make of an image, or at ``size``, and
    whether it is a detector that gives instance masks; a model that refuses
    that input raises CamArgumentError saying what to pass instead. A
    :class:`ModelDescription` is probed already."""
    if isinstance(model, ModelDescription):
        if transforms is None and classes is None and size is None:
            return model.model, model.probe, model.object_masks
        model = model.model
    cam_model = resolve_model(model, transforms=transforms, classes=classes)
    x = _probe_input(cam_model, size)
    seen = {}
    # the output's entries, read in the same dry forward (a hook on the whole model, removed after it)
    handle = cam_model.module.register_forward_hook(lambda m, args, out: seen.update(masks=_gives_masks(out)))
    try:
        return cam_model, _layers.probe_model(cam_model.module, x), seen.get("masks", False)
    except CamArgumentError:
        raise  # the input went through; what the model returned is refused, and says why
    except Exception as e:
        if size is None:
            h, w = x.shape[-2:]
            made_by = "the default ImageNet preprocessing produces" if cam_model.default_transforms else "its transforms produce"
            raise CamArgumentError(
                "model",
                f"the model cannot take the {h}x{w} input {made_by} ({type(e).__name__}: {e}); pass the "
                f"transforms it was trained with (transforms=), or input_size= for a size it takes"
            ) from None
        raise CamArgumentError(
            "input_size",
            f"the model cannot take a {size[0]}x{size[1]} input ({type(e).__name__}: {e}); give the size it "
            f"was built for, or input_size=None for what its transforms produce"
        ) from None
    finally:
        handle.remove()


def _gives_masks(out):
    # a detector's output whose every image has instance masks (cam_core.engine.detection)
    return is_detection_output(out) and all(o.get(MASKS) is not None for o in out)


def candidate_layers(model, transforms=None):
    """Layers of ``model`` that can be explained (with a spatial output), found
    with one dry forward.

    Args:
        model: anything :func:`cam_core.compute_cams` accepts as ``model``
        transforms (None): overrides the model's transforms

    Returns:
        a list of :class:`cam_core.types.LayerInfo` (``name``, ``shape``, ``layout``),
        in forward order
    """
    return list(_probe(model, transforms)[1].layers.values())


def default_layers(model, transforms=None):
    """Suggested layers, found with one dry forward:

    - the model's own suggestion, when its adapter made one
      (:attr:`cam_core.CamModel.suggested_layers`, e.g. a YOLO's finest
      feature map read by its head);
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
    cam_model, probe, _ = _probe(model, transforms)
    return _suggested(cam_model, probe)


def _suggested(cam_model, probe):
    """The layers a model's adapter suggests (:attr:`cam_core.CamModel.suggested_layers`)
    when they are all explainable, else the engine's suggestion from the dry forward."""
    names = cam_model.suggested_layers
    if names and all(n in probe.layers for n in names):
        return list(names)
    return defaults.suggest_layers(probe, cam_model.module)


@dataclass(repr=False)
class ModelDescription:
    """What one dry forward tells about a model (see :func:`describe_model`).

    Its ``repr`` is a table of the layers; :meth:`to_dict` gives JSON.

    Attributes:
        model: the :class:`cam_core.CamModel` described (module, transforms,
            classes); pass it on to :func:`cam_core.compute_cams` to use the
            model without loading it again
        layers: a :class:`cam_core.types.LayerInfo` per explainable layer, in forward
            order: ``name``, ``shape`` (batch of 1), ``layout`` (``"nchw"``,
            ``"nhwc"`` or ``"tokens"``), ``grid`` (h, w), ``channels``,
            ``prefix_tokens``, ``suffix_tokens`` and ``stride`` (tokens only)
        default_layers: the suggested layer names (:func:`cam_core.default_layers`)
        classes: the class names, indexed like the outputs, or None
        num_outputs: the number of classes the model scores (a detector's:
            read from its head, or its class names; None when neither says)
        segmenter: whether the model outputs per-pixel scores
        detector: whether the model returns boxes, labels and scores per
            image (:mod:`cam_core.engine.detection`)
        input_size: the (height, width) of the input the model was probed
            with (a detector's layers see it resized and padded: ``probe.input_hw``)
        probe: the dry forward's record (:class:`cam_core.engine.ModelProbe`)
        object_masks: whether the detector gives each object an instance mask
    """

    model: object = field(repr=False)
    layers: list
    default_layers: list
    classes: list
    num_outputs: int
    segmenter: bool
    input_size: tuple
    probe: object = field(repr=False, default=None)
    detector: bool = False
    object_masks: bool = False

    @property
    def kind(self):
        """``"detector"``, ``"segmenter"`` or ``"classifier"``."""
        return "detector" if self.detector else "segmenter" if self.segmenter else "classifier"

    @property
    def layer_names(self):
        """The names of :attr:`layers`."""
        return [info.name for info in self.layers]

    def layer(self, name):
        """The :class:`cam_core.types.LayerInfo` of one layer; KeyError if it is not explainable."""
        for info in self.layers:
            if info.name == name:
                return info
        raise KeyError(f"'{name}' is not an explainable layer of this model; see .layer_names")

    def resolve_layers(self, names):
        """The :class:`cam_core.types.LayerInfo` of each name (None: the default layers).

        Raises:
            CamArgumentError: (``layers``) for no name, an unknown name (with
                the closest valid ones) or a module with no spatial output
        """
        return defaults.resolve_layers(self.probe, self.model.module, self.default_layers if names is None else names)

    def to_dict(self):
        """The description as JSON-ready built-in types (no module objects)."""
        return {
            "kind": self.kind,
            "segmenter": self.segmenter,
            "detector": self.detector,
            "object_masks": self.object_masks,
            "num_outputs": self.num_outputs,
            "classes": None if self.classes is None else [str(c) for c in self.classes],
            "input_size": list(self.input_size),
            "default_layers": list(self.default_layers),
            "layers": [
                {
                    "name": info.name,
                    "shape": list(info.shape),
                    "layout": info.layout,
                    "grid": list(info.grid),
                    "channels": info.channels,
                    "prefix_tokens": info.prefix_tokens,
                    "suffix_tokens": info.suffix_tokens,
                    "stride": None if info.stride is None else list(info.stride),
                }
                for info in self.layers
            ],
        }

    def __repr__(self):
        kind = self.kind
        named = f"{len(self.classes)} named classes" if self.classes is not None else "no class names"
        h, w = self.input_size
        lines = [
            f"{kind} with {self.num_outputs} outputs ({named}), probed with a {h}x{w} input",
            f"default layers: {', '.join(self.default_layers)}",
            f"{len(self.layers)} explainable layers (name, layout, grid, channels):",
        ]
        width = max((len(info.name) for info in self.layers), default=0)
        for info in self.layers:
            n = info.prefix_tokens
            extra = f", {n} prefix token{'s' if n > 1 else ''}" if n else ""
            k = info.suffix_tokens
            extra += f", {k} trailing token{'s' if k > 1 else ''}" if k else ""
            mark = "  <- default" if info.name in self.default_layers else ""
            grid = "x".join(map(str, info.grid))
            lines.append(f"  {info.name:<{width}}  {info.layout:<6}  {grid:>7}  {info.channels:>5}{extra}{mark}")
        return "\n".join(lines)


def describe_model(model, input_size=None, transforms=None, classes=None):
    """Describes what can be explained in a model, from one dry forward
    (nothing is computed on a dataset): its layers, the suggested ones, its
    classes and kind. For a form's choices, or to pick ``layers`` in a notebook.

    Args:
        model: anything :func:`cam_core.compute_cams` accepts as ``model``: a
            ``torch.nn.Module``, a FiftyOne ``TorchImageModel``, a
            :class:`cam_core.CamModel` (e.g. ``cam_core.load_model("timm:vit_small_patch16_224",
            pretrained=False)`` for random weights), or a name such as
            ``"torchvision:resnet50"`` (pretrained weights: a download)
        input_size (None): the (height, width) of the model input to probe
            with, or an int for a square; grids and token counts follow it
            (a 160x160 input gives a ViT-16 a 10x10 grid). None: the size the
            model's transforms make of an image (224x224 for ImageNet's resize
            256 / centre crop 224)
        transforms (None): overrides the model's transforms
        classes (None): overrides the model's class names

    Returns:
        a :class:`ModelDescription`: ``layers`` (each with ``name``, ``shape``,
        ``layout``, ``grid``, ``channels``, ``prefix_tokens``), ``default_layers``,
        ``classes``, ``num_outputs``, ``segmenter``, ``input_size``, ``model``;
        ``to_dict()`` for JSON

    Raises:
        CamArgumentError: for an ``input_size`` that is not a positive size or
            that the model refuses, or a model with no explainable layer
    """
    cam_model, probe, masks = _probe(model, transforms, classes, _check_input_size(input_size))
    return ModelDescription(
        model=cam_model,
        layers=list(probe.layers.values()),
        default_layers=_suggested(cam_model, probe),
        classes=cam_model.classes,
        num_outputs=_num_outputs(probe, cam_model),
        segmenter=probe.is_segmenter,
        input_size=tuple(int(d) for d in (probe.image_hw or probe.input_hw)),
        probe=probe,
        detector=probe.detector,
        object_masks=masks,
    )


def _num_outputs(probe, cam_model):
    if not probe.detector:
        return int(probe.output_shape[1])
    n = detector_num_classes(cam_model.module)
    return n if n is not None else (len(cam_model.classes) if cam_model.classes is not None else None)


def _check_input_size(input_size):
    if input_size is None:
        return None
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size) if isinstance(input_size, (tuple, list)) else None
    if size is None or len(size) != 2 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in size):
        raise CamArgumentError("input_size", f"input_size must be a positive int or a (height, width) pair of them, or None; got {input_size!r}")
    return size
