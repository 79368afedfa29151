"""OpenCLIP zero-shot classifiers (``open_clip_torch``): an ``open_clip``
model (``CLIP``, ``CustomTextCLIP``: ViT or ResNet image towers, SigLIP's
bias included), FiftyOne's ``TorchOpenClipModel`` (the zoo's
``"open-clip-torch"``), or named ``"open_clip:<model>"`` (e.g.
``cam_core.load_model("open_clip:ViT-B-32", pretrained="openai")``).

What a user gets: a classifier of the classes' text prompts
(:class:`.zeroshot.PromptClassifier`), its layers named as in the model
(``visual.transformer.resblocks.11.ln_1``, ``visual.layer4``); classes from
FiftyOne's model or ``classes=[...]`` (each becomes ``"a photo of a
<name>"``, or FiftyOne's ``text_prompt`` followed by the name); a
``target="text:<prompt>"`` explains any prompt as written; the model's own
preprocessing as transforms. OpenCLIP ships its tokenizer, so all of this
runs offline.

``open_clip`` is imported here only when such a model is passed or named.
"""
import logging

from ...errors import CamArgumentError
from ..cam_model import CamModel, recordable
from .zeroshot import DEFAULT_TEMPLATE, PromptClassifier, Vocabulary, prompt_template

logger = logging.getLogger(__name__)

PREFIXES = ("open_clip",)
_INSTALL = "install it with `pip install fiftyone-cam[open_clip]`"
# the vocabulary of OpenAI's CLIP tokenizer, which open_clip ships
_CLIP_VOCAB = 49408


def _is_open_clip(obj):
    return type(obj).__module__.startswith("open_clip.") and all(
        hasattr(obj, a) for a in ("encode_image", "encode_text", "visual", "logit_scale"))


def _is_fiftyone_model(obj):
    t = type(obj)
    return t.__module__ == "fiftyone.utils.open_clip" and hasattr(obj, "_model")


def claims(obj):
    """Whether ``obj`` is an OpenCLIP model or FiftyOne's wrapper of one."""
    return _is_open_clip(obj) or _is_fiftyone_model(obj)


def _encode_image(model, images):
    return model.encode_image(images)


def adapt(obj, preprocess=None, *, tokenizer=None, name=None):
    """The :class:`cam_core.CamModel` of an OpenCLIP model or FiftyOne's
    ``TorchOpenClipModel``: a :class:`.zeroshot.PromptClassifier` with its
    :class:`.zeroshot.Vocabulary` (FiftyOne's classes and prompt when it
    has them; else none yet: ``classes=[...]`` or ``target="text:..."``).
    Nothing of ``obj`` is changed.

    Args:
        obj: the model or FiftyOne's wrapper
        preprocess (None): transforms to use instead of the model's own
        tokenizer (None), name (None): ``load``'s, for a model named

    Raises:
        CamArgumentError: (``model``) for a model whose tokenizer cannot be
            told (a text tower that is not CLIP's vocabulary, passed bare)
    """
    classes, template, transforms = None, DEFAULT_TEMPLATE, preprocess
    if _is_fiftyone_model(obj):
        model = obj._model
        tokenizer = tokenizer or getattr(obj, "_tokenizer", None)
        transforms = transforms or getattr(obj, "_clip_preprocess", None)
        classes = getattr(obj, "classes", None)
        prompt = getattr(getattr(obj, "config", None), "text_prompt", None)
        if prompt:  # FiftyOne's prompts: "<text_prompt> <class>"
            template = prompt_template(prompt)
        name = name or f"open_clip:{getattr(obj.config, 'clip_model', type(model).__name__)}"
    else:
        model = obj
    tokenizer = tokenizer or _clip_tokenizer(model)

    def encode_text(m, texts):
        device = next(m.parameters()).device
        return m.encode_text(tokenizer(texts).to(device))

    head = PromptClassifier(model, _encode_image, encode_text)
    vocabulary = Vocabulary(head, template)
    if classes:
        vocabulary.set_classes([str(c) for c in classes])
    return CamModel(head, transforms or _own_transforms(model), list(vocabulary.classes) or None,
                    name or f"open_clip:{type(model).__name__}", vocabulary=vocabulary)


def _clip_tokenizer(model):
    """open_clip's own tokenizer of CLIP's vocabulary, for a model passed
    bare (an open_clip model does not record its name, hence its tokenizer)."""
    vocab = getattr(model, "vocab_size", None)
    if vocab != _CLIP_VOCAB:
        raise CamArgumentError(
            "model", f"this OpenCLIP model's text tower has {vocab} tokens, not CLIP's {_CLIP_VOCAB}: its tokenizer "
                     f"cannot be told from the model. Pass FiftyOne's model (foz.load_zoo_model('open-clip-torch', "
                     f"...)) or name it: cam_core.load_model('open_clip:<model name>', pretrained=...)")
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=getattr(model, "context_length", 77))


def _own_transforms(model):
    """open_clip's evaluation preprocessing for the model's image size, mean and std."""
    import open_clip

    visual = model.visual
    cfg = getattr(visual, "preprocess_cfg", None) or {}
    return open_clip.image_transform(visual.image_size, is_train=False, mean=cfg.get("mean", getattr(visual, "image_mean", None)),
                                     std=cfg.get("std", getattr(visual, "image_std", None)))


def load(name, pretrained=None, **kwargs):
    """The :class:`cam_core.CamModel` of ``"open_clip:<model>"`` (a name of
    ``open_clip.list_models()``): the model with ``pretrained`` weights (a tag
    of ``open_clip.list_pretrained_tags_by_model(name)``, or a local file;
    None: random weights, with a warning), its tokenizer and preprocessing.

    Raises:
        CamArgumentError: (``model``) when open_clip is not installed, the
            name is unknown, or the weights cannot be found or downloaded
    """
    try:
        import open_clip
    except ImportError:
        raise CamArgumentError("model", f"'open_clip:{name}' needs the open_clip_torch package: {_INSTALL}") from None
    if name not in open_clip.list_models():
        import difflib

        near = difflib.get_close_matches(name, open_clip.list_models(), n=5)
        raise CamArgumentError("model", f"'{name}' is not an OpenCLIP model name"
                                        f"{'; closest: ' + ', '.join(near) if near else ''} (open_clip.list_models())")
    if pretrained is None:
        logger.warning("open_clip:%s without pretrained=: random weights (tags: open_clip.list_pretrained_tags_by_model)",
                       name)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, **kwargs)
    except (RuntimeError, OSError, ValueError) as e:
        raise CamArgumentError("model", f"cannot load OpenCLIP '{name}' with pretrained={pretrained!r}: {e}") from None
    out = adapt(model.eval(), preprocess, tokenizer=open_clip.get_tokenizer(name), name=f"open_clip:{name}")
    out.kwargs = recordable(dict(kwargs, pretrained=pretrained))
    return out
