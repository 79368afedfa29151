"""Hugging Face transformers image models: ``*ForImageClassification``
(ViT, DeiT, BEiT, Swin, ConvNeXt, ResNet, DINOv2 with registers, ...),
``*ForSemanticSegmentation`` (SegFormer, UperNet, DPT, MobileViT) and
``*ForObjectDetection`` (DETR family, YOLOS, RT-DETR), passed as the
module itself, through FiftyOne's wrappers
(``fiftyone.utils.transformers.FiftyOneTransformer*``, e.g. from
``convert_transformers_model`` or the zoo), or named ``"hf:<repo>"``.

What a user gets:

- a classifier or segmenter is explained as the module it is (its layers
  named as in the model; the engine reads its output's ``.logits``; a
  segmenter's reduced-resolution logits are scored as the engine scores
  any segmenter's); the token layout of each layer (class, distillation and
  register tokens; Swin's grid stage by stage) and the suggested layer are
  derived by the engine from the model's own outputs at its input size;
- a detector is explained through :class:`.hf_outputs.HFDetector`: every
  query an object, its box from ``pred_boxes``, its target the query's class
  probability with the no-object class dropped;
- the model's image processor as transforms (FiftyOne's wrapper carries it;
  a processor passed as ``transforms=`` is accepted too), its resize and crop
  undone on the image; without one, a resize to the config's ``image_size``
  with ImageNet's mean and std (a warning says so);
- classes from ``config.id2label``.

``transformers`` is imported here only when a model is named (``load``);
a passed model is recognised from its type's module.
"""
import logging

from ...errors import CamArgumentError
from ..cam_model import CamModel, recordable
from .hf_outputs import HFDetector, ImageProcessorTransforms

logger = logging.getLogger(__name__)

PREFIXES = ("hf",)

# the heads explained, by the end of the model class's name, and what each is to the engine
_HEADS = {
    "ForImageClassification": "classifier",
    "ForImageClassificationWithTeacher": "classifier",
    "ForSemanticSegmentation": "segmenter",
    "ForObjectDetection": "detector",
}
_INSTALL = "install it with `pip install fiftyone-cam[transformers]`"


def _is_hf_model(obj):
    return any(c.__module__.startswith("transformers.") and c.__name__ == "PreTrainedModel"
               for c in type(obj).__mro__)


def _is_fiftyone_wrapper(obj):
    t = type(obj)
    return t.__module__ == "fiftyone.utils.transformers" and t.__name__.startswith(
        ("FiftyOneTransformer", "FiftyOneZeroShotTransformer"))


def _is_zero_shot(model):
    """An image-text model (CLIP, SigLIP, ALIGN, ...): both towers and a logit scale."""
    return all(hasattr(model, a) for a in ("get_image_features", "get_text_features", "logit_scale"))


def is_image_processor(obj):
    """Whether ``obj`` is a transformers image processor (or a processor holding one)."""
    inner = getattr(obj, "image_processor", None) or obj
    return any(c.__module__.startswith("transformers.") and c.__name__ in ("ImageProcessingMixin",
                                                                           "BaseImageProcessor")
               for c in type(inner).__mro__)


def claims(obj):
    """Whether ``obj`` is a transformers model or FiftyOne's wrapper of one."""
    return _is_hf_model(obj) or _is_fiftyone_wrapper(obj)


def adapt_transforms(obj):
    """An image processor as transforms (:class:`.hf_outputs.ImageProcessorTransforms`), else None."""
    return ImageProcessorTransforms(obj) if is_image_processor(obj) else None


def _head(model):
    name = type(model).__name__
    for suffix, kind in sorted(_HEADS.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return kind
    return None


def adapt(obj, preprocess=None):
    """The :class:`cam_core.CamModel` of a transformers model or a
    ``FiftyOneTransformer*`` wrapper: the module (a detector wrapped in
    :class:`.hf_outputs.HFDetector`), its processor as transforms, its
    ``id2label`` as classes; an image-text model (CLIP, SigLIP) as a
    zero-shot classifier (:func:`zero_shot`). Nothing of ``obj`` is changed.

    Args:
        obj: the model or FiftyOne's wrapper
        preprocess (None): the ``transforms`` the user passed with it (a
            zero-shot model's processor carries its tokenizer)

    Raises:
        CamArgumentError: (``model``) for a model of another head (a base
            model, depth, pose, universal segmentation, zero-shot, ...)
    """
    processor, classes = None, None
    if _is_fiftyone_wrapper(obj):
        model = obj._model
        handler = getattr(obj, "transforms", None)
        processor = getattr(handler, "processor", None)
        if not _is_hf_model(model):
            raise CamArgumentError(
                "model", f"this {type(obj).__name__} holds a {type(model).__name__}, not a transformers model")
    else:
        model = obj
    if _is_zero_shot(model):
        if _is_fiftyone_wrapper(obj) and not type(obj).__name__.endswith("ForImageClassification"):
            raise CamArgumentError("model", f"a {type(obj).__name__} is not explained here: of FiftyOne's zero-shot "
                                            f"transformers, the image classifiers are")
        return zero_shot(obj, model, processor or preprocess)
    kind = _head(model)
    if kind is None:
        raise CamArgumentError(
            "model", f"a Hugging Face {type(model).__name__} is not explained here: it has no class scores to "
                     f"explain. Explained: models whose class ends in {', '.join(_HEADS)} (e.g. "
                     f"ViTForImageClassification, SegformerForSemanticSegmentation, DetrForObjectDetection)")
    config = model.config
    id2label = getattr(config, "id2label", None) or {}
    if id2label:
        classes = [str(id2label.get(i, id2label.get(str(i), i))) for i in range(int(config.num_labels))]
    transforms = ImageProcessorTransforms(processor) if processor is not None and is_image_processor(processor) else None
    default = False
    if transforms is None and preprocess is None:  # (the user's transforms replace them: no warning)
        transforms, default = _config_transforms(config), True
    module = HFDetector(model) if kind == "detector" else model
    suggested = _detector_layer(model) if kind == "detector" else None
    out = CamModel(module, transforms, classes, getattr(config, "_name_or_path", None) or type(model).__name__,
                   suggested_layers=suggested)
    out.default_transforms = default and transforms is not None
    return out


def _detector_layer(model):
    """A DETR-style detector's suggested layer: the projection of the
    backbone's feature map that its transformer encoder reads (every query
    attends to it; the decoder's query states are no grid over the image),
    named as in :class:`.hf_outputs.HFDetector`; None (the engine's
    suggestion) for a model without one (YOLOS: its ViT tokens)."""
    from torch import nn

    for name, module in model.named_modules():
        if name.split(".")[-1] in ("input_projection", "encoder_input_proj"):
            if isinstance(module, nn.ModuleList):  # one projection per level: the last, coarsest
                return [f"model.{name}.{len(module) - 1}"]
            return [f"model.{name}"]
    return None


def _config_transforms(config):
    """Without a processor: a resize to the config's ``image_size`` (the size
    the model was built for) with ImageNet's mean and std, or None (the
    engine's default) when the config has no size."""
    size = getattr(config, "image_size", None)
    if size is None:
        return None
    from torchvision.transforms import v2 as T

    import torch

    h, w = (size, size) if isinstance(size, int) else tuple(size)[:2]
    logger.warning("the transformers model came without its image processor: resizing to its config's image_size "
                   "%dx%d with ImageNet's mean and std; pass the processor as transforms= for its own", h, w)
    return T.Compose([T.Resize((h, w)), T.PILToTensor(), T.ToDtype(torch.float32, scale=True),
                      T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


def load(name, **kwargs):
    """The :class:`cam_core.CamModel` of ``"hf:<repo or path>"``: the model
    class its config names (``architectures``), loaded with
    ``from_pretrained`` (a local folder, the cache, else downloaded), and its
    image processor when it has one.

    Raises:
        CamArgumentError: (``model``) when transformers is not installed or
            the model cannot be found or downloaded
    """
    import os

    if (name.startswith(("./", "../", "~")) or os.path.isabs(name)) and not os.path.isdir(name):
        # a path: the hub's own message would be about repository ids
        raise CamArgumentError(
            "model", f"'hf:{name}' names no folder on this machine: give a folder written by save_pretrained (holding "
                     f"config.json), or a hub repository id such as 'google/vit-base-patch16-224'")
    try:
        import transformers
    except ImportError:
        raise CamArgumentError("model", f"'hf:{name}' needs the transformers package: {_INSTALL}") from None
    try:
        config = transformers.AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise CamArgumentError(
            "model", f"cannot load the Hugging Face model 'hf:{name}' ({e}); give a repository on the hub (with "
                     f"network or in the cache) or a folder written by save_pretrained") from None
    arch = next((a for a in (config.architectures or []) if explained(a)), None)
    cls = getattr(transformers, arch, None) if arch else None
    if cls is None:
        raise CamArgumentError(
            "model", f"'hf:{name}' is a {', '.join(config.architectures or ['model without architectures'])}: "
                     f"explained are models whose class ends in {', '.join(_HEADS)}")
    model = cls.from_pretrained(name, **kwargs).eval()
    try:
        # a zero-shot model's processor holds its tokenizer as well
        loader = transformers.AutoProcessor if _is_zero_shot(model) else transformers.AutoImageProcessor
        processor = loader.from_pretrained(name)
    except (OSError, ValueError):
        processor = None
    out = adapt(model, processor)
    if processor is not None:
        out.transforms, out.default_transforms = ImageProcessorTransforms(processor), False
    out.name = f"hf:{name}"
    out.kwargs = recordable(kwargs)
    return out


# the image-text models "hf:<name>" loads as zero-shot classifiers, by their config's architectures
_ZERO_SHOT_NAMES = ("CLIPModel", "SiglipModel", "Siglip2Model", "AlignModel", "AltCLIPModel", "ChineseCLIPModel",
                    "MetaClip2Model")


def zero_shot(obj, model, processor):
    """A transformers image-text model (or FiftyOne's
    ``FiftyOneZeroShotTransformerForImageClassification``) as a zero-shot
    classifier (:class:`.zeroshot.PromptClassifier`): the class prompts
    embedded by ``get_text_features`` with the processor's tokenizer, the
    image by ``get_image_features``; FiftyOne's wrapper gives its classes
    and prompts, else ``classes=[...]`` (each name its own prompt, as
    FiftyOne's models without ``text_prompt``) or ``target="text:..."``.

    Raises:
        CamArgumentError: (``model``) without a tokenizer (no processor given)
    """
    from .zeroshot import PromptClassifier, Vocabulary, prompt_template

    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None:
        raise CamArgumentError(
            "model", f"a {type(model).__name__} scores images against text prompts, which need its tokenizer: pass "
                     f"its processor as transforms= (transformers.AutoProcessor.from_pretrained(...)), FiftyOne's "
                     f"zero-shot model, or 'hf:<repo or folder>'")

    def encode_text(m, texts):
        device = next(m.parameters()).device
        tokens = tokenizer(texts, padding=True, return_tensors="pt")
        return _pooled(m.get_text_features(**{k: v.to(device) for k, v in tokens.items()}))

    head = PromptClassifier(model, lambda m, x: _pooled(m.get_image_features(pixel_values=x)), encode_text)
    prompt = getattr(getattr(obj, "config", None), "text_prompt", None) if obj is not model else None
    vocabulary = Vocabulary(head, prompt_template(prompt))
    classes = getattr(obj, "classes", None) if obj is not model else None
    if classes:
        vocabulary.set_classes([str(c) for c in classes], getattr(obj, "text_prompts", None))
    image = getattr(processor, "image_processor", None)
    transforms = ImageProcessorTransforms(image) if image is not None else _config_transforms(model.config.vision_config)
    return CamModel(head, transforms, list(vocabulary.classes) or None,
                    getattr(model.config, "_name_or_path", None) or type(model).__name__, vocabulary=vocabulary)


def _pooled(out):
    # transformers 5 returns the projected embedding as the output's pooler_output; earlier, the tensor
    return out if hasattr(out, "dim") else out.pooler_output


def explained(architecture):
    """Whether a config's architecture name (``"ViTForImageClassification"``,
    ``"CLIPModel"``) is one this adapter explains; read without transformers."""
    return any(architecture.endswith(suffix) for suffix in _HEADS) or architecture in _ZERO_SHOT_NAMES
