"""Mixed precision: the one hooked forward and its backward under ``torch.autocast``,
the maps computed in fp32.

- ``"fp32"`` (the default): no autocast.
- ``"bf16"``: autocast to bfloat16 (CUDA, and the CPU, which supports it).
  bfloat16 has fp32's range: no gradient underflows, no scaling.
- ``"fp16"``: autocast to float16, with loss scaling: the target is
  multiplied by a scale before the backward and the gradients divided by it
  in fp32 after (float16's smallest normal is 6e-5; a class score's
  gradients with respect to a layer are often smaller). When a gradient
  overflows the scale is halved and the backward run again, as
  ``torch.amp.GradScaler`` does for an optimizer. torch 2.14 runs float16
  autocast on the CPU too, but its float16 kernels are slow there (a
  ResNet-18 batch took 4x the time of fp32 on this project's CPU machine):
  accepted, and meant for GPUs.

The engines cast what autocast returns (the model's output, activations and
gradients) to fp32 before any map's maths, and build the targets' loss in
fp32 (FullGrad's too). What runs outside the one pass (ScoreCAM's and
AblationCAM's extra forwards, ShapleyCAM's second-order pass) runs in fp32.
"""
from collections.abc import Mapping
from contextlib import nullcontext

import torch

from ..errors import CamArgumentError

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# fp16's loss scale, at most (the gradient of a target with respect to an fp16 output is the scale
# itself: 2**16 is beyond fp16's 65504), halved on each overflow, doubled again after
# GROWTH_INTERVAL backwards without one
INITIAL_SCALE = 2.0 ** 15
GROWTH_INTERVAL = 100


def check_precision(precision, device, methods=(), layers=()):
    """The precision, refused where ``device`` cannot run it, and for
    XGradCAM on a normalisation layer's output (a ViT's or Swin's ``norm1``):
    XGradCAM divides by each channel's spatial sum, near zero there, and
    bf16's or fp16's rounding of the activations turns its maps into noise
    (measured: correlation 0.03 with fp32's on a Swin).

    Args:
        precision: one of :data:`PRECISIONS`
        device: the run's torch device
        methods, layers: the run's method names and :class:`cam_core.types.LayerInfo`

    Raises:
        CamArgumentError: (``precision``) naming what is allowed
    """
    if precision not in PRECISIONS:
        raise CamArgumentError("precision", f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    device = torch.device(device)
    if precision != "fp32" and not torch.amp.is_autocast_available(device.type):
        raise CamArgumentError(
            "precision", f"torch has no autocast for device '{device.type}': use precision='fp32' there")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise CamArgumentError(
            "precision", f"{torch.cuda.get_device_name(device)} has no bfloat16: use precision='fp16' or 'fp32'")
    normed = [i.name for i in layers if "Norm" in type(i.module).__name__]
    if precision != "fp32" and "xgradcam" in methods and normed:
        raise CamArgumentError(
            "precision", f"xgradcam divides by each channel's spatial sum, near zero after the normalisation of "
                         f"{', '.join(normed)}: in {precision} its maps lose their meaning. Use precision='fp32' "
                         f"for xgradcam there, or other layers")
    return precision


def autocast(precision, device):
    """The context the forward and the loss run in (none for fp32)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=DTYPES[precision])


def as_float(output):
    """A model's output with each reduced-precision floating tensor cast to
    fp32 (a tensor, or mappings, lists and tuples of them); the cast is part
    of the graph, so the loss built on it is fp32."""
    if isinstance(output, torch.Tensor):
        return output.float() if output.is_floating_point() and output.dtype != torch.float32 else output
    if isinstance(output, Mapping):
        return type(output)((k, as_float(v)) for k, v in output.items())
    if isinstance(output, (list, tuple)) and not hasattr(output, "_fields"):
        return type(output)(as_float(v) for v in output)
    return output


class Gradients:
    """``torch.autograd.grad(loss, inputs, allow_unused=True)`` in the
    engine's precision: fp16 with its loss scale (see the module's docstring).

    Args:
        precision: one of :data:`PRECISIONS`
    """

    def __init__(self, precision):
        self.scaled = precision == "fp16"
        self.scale = INITIAL_SCALE if self.scaled else 1.0
        self._good = 0

    def __call__(self, loss, inputs, retain_graph=False):
        """The gradients of ``loss`` with respect to ``inputs`` (None for an
        input the loss does not depend on), unscaled.

        Raises:
            FloatingPointError: when they are not finite at any scale >= 1
                (the fp16 forward itself overflowed)
        """
        if not self.scaled:
            return torch.autograd.grad(loss, inputs, retain_graph=retain_graph, allow_unused=True)
        while True:
            # the graph is kept for a retry at a lower scale; the caller frees it by dropping the output
            grads = torch.autograd.grad(loss * self.scale, inputs, retain_graph=True, allow_unused=True)
            grads = [None if g is None else g.float() / self.scale for g in grads]
            if all(g is None or bool(torch.isfinite(g).all()) for g in grads):
                self._good += 1
                if self._good >= GROWTH_INTERVAL:
                    self.scale, self._good = min(self.scale * 2, INITIAL_SCALE), 0
                return grads
            self._good = 0
            if self.scale <= 1:
                raise FloatingPointError(
                    "fp16: the gradients are not finite even without loss scaling (values beyond float16's range "
                    "in the model's forward or backward); use precision='bf16' or 'fp32'")
            self.scale /= 2
