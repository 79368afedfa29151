"""The score tensor in what a classifier or segmenter returns (tensors,
dicts, Hugging Face outputs, tuples); detectors' outputs are
:mod:`.detection`'s."""
from collections.abc import Mapping

import torch

from ..errors import CamArgumentError


def model_output(out):
    """The score tensor of a model's output.

    Accepted: a tensor; a dict with an ``"out"`` (torchvision segmenters) or
    ``"logits"`` tensor, or a single tensor entry; an object with a ``.logits``
    tensor (a Hugging Face ``ModelOutput``, a dataclass); a tuple or list
    whose first element is one of these.

    Raises:
        CamArgumentError: (``model``) for any other output, saying what it was
    """
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):  # a ModelOutput is an OrderedDict too
        for key in ("out", "logits"):
            if isinstance(out.get(key), torch.Tensor):
                return out[key]
        if len(out) == 1 and isinstance(next(iter(out.values())), torch.Tensor):
            return next(iter(out.values()))
    elif isinstance(getattr(out, "logits", None), torch.Tensor):
        return out.logits
    elif isinstance(out, (tuple, list)) and out:
        try:
            return model_output(out[0])
        except CamArgumentError:
            pass  # said below, of the whole output
    raise CamArgumentError(
        "model",
        f"the model returned {_described(out)}; cam_core needs its scores as a tensor ((B, classes) or "
        f"(B, classes, H, W)): a tensor, a dict with an 'out' or 'logits' tensor (or a single tensor entry), "
        f"an object with a .logits tensor (a Hugging Face ModelOutput, a dataclass), or a tuple or list whose "
        f"first element is one of these. Wrap the model in a module whose forward returns the scores",
    )


def check_differentiable(scores, what="scores"):
    """Refuses scores that no gradient can flow from (integers, booleans):
    every gradient method, and the target of every map, needs them as floats.

    Raises:
        CamArgumentError: (``model``) naming the type and what to return instead
    """
    if isinstance(scores, torch.Tensor) and not (scores.is_floating_point() or scores.is_complex()):
        raise CamArgumentError(
            "model",
            f"the model returned its {what} as {scores.dtype}: a class activation map needs floating-point "
            f"scores to take their gradient. Return the raw scores (logits), before any argmax, rounding or "
            f"conversion to integers",
        )


def _described(out):
    if isinstance(out, Mapping):
        return f"a mapping ({type(out).__name__}) with keys {list(out)}, none of them an 'out' or 'logits' tensor"
    if isinstance(out, (tuple, list)) and not out:
        return f"an empty {type(out).__name__}"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} whose first element is {_described(out[0])}"
    if hasattr(out, "logits"):
        return f"an object of type {type(out).__name__} whose .logits is {_described(out.logits)}, not a tensor"
    return "None" if out is None else f"an object of type {type(out).__name__}"
