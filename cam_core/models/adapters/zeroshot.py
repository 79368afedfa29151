"""Zero-shot (open-vocabulary) classifiers, whatever their family: an image
tower and a text tower whose embeddings' cosine similarity, scaled by the
model's own ``logit_scale`` (plus its ``logit_bias``, SigLIP's), scores an
image against each class's text prompt.

What the engine sees is :class:`PromptClassifier`: a classifier whose
``forward`` is the image tower followed by the similarity to the prompts'
embeddings, which are computed once, by the text tower, when the classes are
set (constants to the map: a CAM explains the image). Its submodules are the
model's own, registered under the model's names, so layers read as in the
model (``visual.transformer.resblocks.11.ln_1``); only the image tower runs.

:class:`Vocabulary` is what a family's adapter attaches to the
:class:`cam_core.CamModel` (``vocabulary``): the classes' prompts, a class
added for a ``target="text:<prompt>"``, and ``classes=[...]`` turned into
prompts.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import CamArgumentError

# FiftyOne's zero-shot models prefix each class with such a text ("A photo of" + " dog")
DEFAULT_TEMPLATE = "a photo of a {}"


def prompt_template(text_prompt):
    """The template of FiftyOne's zero-shot models' prompts, ``"<text_prompt> <class>"``
    (their config's ``text_prompt``, its braces kept as written); ``"{}"``
    (the class name itself) for none."""
    if not text_prompt:
        return "{}"
    return text_prompt.replace("{", "{{").replace("}", "}}") + " {}"


class PromptClassifier(nn.Module):
    """A zero-shot model as a classifier of its prompts.

    Args:
        model: the whole model (CLIP and its kin); its children are
            registered here under their own names, it is not changed
        encode_image: a function of ``(model, images)`` giving the image
            embeddings (B, D)
        encode_text: a function of ``(model, texts)`` giving the text
            embeddings (K, D), called without gradients
    """

    def __init__(self, model, encode_image, encode_text):
        super().__init__()
        for name, child in model.named_children():
            self.add_module(name, child)
        # the model itself is not a submodule (its children are): its
        # parameters would be counted twice and its text tower offered as layers
        object.__setattr__(self, "model", model)
        self._encode_image, self._encode_text = encode_image, encode_text
        self.register_buffer("text_features", torch.zeros(0), persistent=False)

    def set_prompts(self, texts):
        """Embeds ``texts`` (the text tower in eval mode, no gradients; the
        model's modes are put back)."""
        modes = {m: m.training for m in self.model.modules()}
        try:
            self.model.eval()
            with torch.no_grad():
                features = self._encode_text(self.model, list(texts))
        finally:
            for m, mode in modes.items():
                m.training = mode
        self.text_features = F.normalize(features.detach().float(), dim=-1)

    def forward(self, images):
        if self.text_features.numel() == 0:
            raise CamArgumentError("classes", "a zero-shot model has no classes yet: pass classes=[...] (the names "
                                              "its prompts are made of) or target='text:<prompt>'")
        image = F.normalize(self._encode_image(self.model, images), dim=-1)
        text = self.text_features.to(image.device, image.dtype)
        # the model's scale and bias are read, not differentiated: the map
        # explains the image, and the model's gradients stay as they were
        # (on the image's device: a run may have moved the image tower, which holds neither)
        scale = self.model.logit_scale.detach().to(image.device, image.dtype).exp()
        logits = scale * image @ text.t()
        bias = getattr(self.model, "logit_bias", None)
        return logits if bias is None else logits + bias.detach().to(image.device, image.dtype)


class Vocabulary:
    """The classes of a zero-shot model, each a text prompt.

    Args:
        head: the :class:`PromptClassifier`
        template: how a class name becomes its prompt (``"a photo of a {}"``)
    """

    def __init__(self, head, template=DEFAULT_TEMPLATE):
        self.head, self.template = head, template
        self.classes, self.prompts = [], []

    def set_classes(self, names, prompts=None):
        """Makes ``names`` the model's classes: their prompts (by the template,
        unless given) embedded by the text tower.

        Raises:
            CamArgumentError: (``classes``) for no class or a name that is not text
        """
        names = list(names)
        if not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise CamArgumentError("classes", f"a zero-shot model's classes must be non-empty texts; got {names!r}")
        prompts = [self.template.format(n) for n in names] if prompts is None else list(prompts)
        self.head.set_prompts(prompts)
        self.classes, self.prompts = names, prompts

    def index(self, text):
        """The class index of a prompt as written: a class's name, else a
        class's prompt; None for a text that is neither."""
        if text in self.classes:
            return self.classes.index(text)
        if text in self.prompts:
            return self.prompts.index(text)
        return None

    def add_text(self, text):
        """The class index of a ``target="text:<prompt>"``: the prompt as
        written, added as a class (its own name) unless it is one already."""
        index = self.index(text)
        if index is not None:
            return index
        self.set_classes(self.classes + [text], self.prompts + [text])
        return len(self.classes) - 1

    def copy(self):
        """A vocabulary with its own head (the same model, classes and
        prompts): a copied :class:`cam_core.CamModel` changes its classes
        without changing the original's."""
        head = PromptClassifier(self.head.model, self.head._encode_image, self.head._encode_text)
        head.text_features = self.head.text_features.clone()
        out = Vocabulary(head, self.template)
        out.classes, out.prompts = list(self.classes), list(self.prompts)
        return out
