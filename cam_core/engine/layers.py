"""Finding a model's spatial layers from one dry forward.

Every module's output is recorded; :mod:`.grids` says which are grids over
the input (channels-first, channels-last, or tokens whose grid :mod:`.tokens`
derives from the model and the input) and refuses the others with a reason:
attention matrices, outputs that carry no gradient from the image (position
tables), outputs a later in-place operation changes (a module's or a
function's: ``F.relu(x, inplace=True)``, ``x += y``), modules that run more
than once. In a detector, each ``(B, C, H, W)`` entry of a module's mapping
output (a feature pyramid's levels) is a layer too, named ``module:key``
(``backbone.fpn:0``). Nothing is hard-coded.
"""
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ..errors import CamArgumentError
from .grids import LayerInfo, classify, settle_ambiguous
from .outputs import check_differentiable, model_output
from .state import preserved_state
from .tokens import token_hints

__all__ = ["LayerInfo", "ModelProbe", "check_scores", "probe_model"]


@dataclass
class ModelProbe:
    """What one dry forward tells about a model.

    Attributes:
        input_hw: the (h, w) of the probe input
        output_shape: shape of the model's (adapted) output
        layers: ``{name: LayerInfo}`` of every spatial layer, in forward order
        rejected: ``{name: reason}`` for modules that are not spatial layers
        order: every hooked module name, in the order its forward finished
            (a pyramid level ``module:key`` right after its module)
        detector: whether the model returns boxes, labels and scores per
            image (:mod:`cam_core.engine.detection`); its ``output_shape`` is
            None and ``input_hw`` the size its layers see (a detector resizes
            and pads inside; ``image_hw`` is the size given)
        image_hw: the (h, w) of the image tensor given to the model
        mappings: ``{module: [layer names]}`` of the modules whose output is a
            mapping of grids (a backbone's stages, a feature pyramid): the
            name each entry is known by (the module that computed it, or
            ``module:key``)
    """

    input_hw: tuple
    output_shape: tuple
    layers: dict
    rejected: dict
    order: list
    detector: bool = False
    image_hw: tuple = None
    mappings: dict = field(default_factory=dict)

    @property
    def is_segmenter(self):
        return self.output_shape is not None and len(self.output_shape) == 4


def probe_model(model, input_tensor):
    """Runs one forward of ``input_tensor`` (batch 1) and records every module's output.

    The forward runs as the engine's does, with gradients from the image (the
    input requires them; the parameters are frozen meanwhile): an output that
    carries none cannot be explained. The model is left as found (mode,
    parameters, its own hooks).

    Returns:
        a :class:`ModelProbe`

    Raises:
        CamArgumentError: (``model``) for a model whose output no kind of model
            the engine explains returns (see :func:`check_scores`)
    """
    from .detection import InputGeometry, is_detection_output

    names = {m: n for n, m in model.named_modules() if n}
    rec = _Recorder(names)
    geometry = InputGeometry(model)
    with preserved_state(model):
        for p in model.parameters():
            p.requires_grad_(False)
        x = input_tensor.detach().clone().requires_grad_(input_tensor.is_floating_point())
        handles = [m.register_forward_hook(rec.hook) for m in names]
        try:
            with torch.enable_grad(), geometry.recording():
                raw = model(x)
        finally:
            for h in handles:
                h.remove()
        changed = rec.changed()
    detector = is_detection_output(raw)
    out = None if detector else check_scores(model_output(raw), x.shape[0])
    check_differentiable(raw[0]["scores"] if detector else out)  # integers fail at the first backward
    del raw
    order = rec.order if detector else [n for n in rec.order if ":" not in n]  # a mapping's entries: detectors only
    input_hw = tuple(input_tensor.shape[-2:])
    image_hw = input_hw
    if detector and geometry.padded_hw is not None:
        input_hw = geometry.padded_hw  # its layers are grids over the resized, padded image
    hints = token_hints(model, input_hw, list(rec.shapes.values()))

    layers, rejected = {}, {}
    modules = dict(model.named_modules())
    for name in dict.fromkeys(order):  # first-finish order, deduplicated
        shape = rec.shapes[name]
        if rec.calls[name] > 1:
            rejected[name] = f"it runs {rec.calls[name]} times per forward (choose its parent block)"
            continue
        if name in changed:
            # its hook would record what a later in-place operation (ReLU(inplace=True), +=, F.relu_) made of it
            rejected[name] = ("its output is changed in place by a later operation (an in-place activation or "
                              "addition): explain the module after it")
            continue
        reason, info = classify(name, shape, hints)
        if info is not None and ":" in name and info.layout != "nchw":
            reason, info = f"its output {shape} is not a channels-first pyramid level", None
        if info is not None and name not in rec.graded:
            reason, info = (f"its output {shape} carries no gradient from the image (computed from the weights "
                            f"alone, as a position bias is, or detached): no map can follow it"), None
        if info is None:
            rejected[name] = reason
        else:
            module_name, _, key = name.partition(":")
            info.module, info.key = modules[module_name], key or None
            layers[name] = info
    settle_ambiguous(layers)
    for info in layers.values():
        if info.grid is None:
            info.grid = tuple(info.shape[1:3] if info.layout == "nhwc" else info.shape[2:4])
    for name in names.values():
        if name not in rec.shapes:
            rejected[name] = "it did not run in the forward"
    return ModelProbe(input_hw, None if detector else tuple(out.shape), layers, rejected, list(dict.fromkeys(order)),
                      detector, image_hw, rec.mappings)


def check_scores(out, batch):
    """``out`` (a model's score tensor) if a classifier's ``(B, classes)`` or a
    segmenter's ``(B, classes, H, W)`` for a batch of ``batch``.

    Raises:
        CamArgumentError: (``model``) for any other shape, before a run starts
    """
    if out.ndim in (2, 4) and out.shape[0] == batch:
        return out
    raise CamArgumentError(
        "model",
        f"the model's scores have shape {tuple(out.shape)} for a batch of {batch}: cam_core explains classifiers "
        f"(scores (B, classes)), segmenters ((B, classes, H, W)) and detectors (one mapping of 'boxes', 'labels' "
        f"and 'scores' per image). Pass a module whose forward returns one of these",
    )


class _Recorder:
    """Every module's output in one forward: its shape, how many times it ran,
    the order modules finished in, whether it carries a gradient from the
    input, and the version of its tensor when returned (to find those a later
    in-place operation changes, through a module or a function)."""

    def __init__(self, names):
        self.names = names
        self.shapes, self.calls, self.order = {}, {}, []
        self.graded = set()  # names whose output carries a gradient from the input
        self.mappings = {}  # module -> the names of its mapping output's grids
        self.returned = []  # (name, tensor, its version when returned), tensors kept alive until checked
        self.seen = {}  # tensor id -> (the latest name that returned it, weak reference)

    def known(self, tensor):
        # an id is only the same tensor while that one is alive: checked through the weak reference
        entry = self.seen.get(id(tensor))
        return entry[0] if entry is not None and entry[1]() is tensor else None

    def record(self, name, tensor):
        # the latest module to return a tensor names it: a parent passing it on, or an in-place activation
        # after its norm, returns the same tensor, which is then no other layer
        self.seen[id(tensor)] = (name, weakref.ref(tensor))
        self.returned.append((name, tensor, tensor._version))
        if tensor.requires_grad:
            self.graded.add(name)

    def hook(self, module, args, output):
        name = self.names[module]
        self.calls[name] = self.calls.get(name, 0) + 1
        self.shapes[name] = tuple(output.shape) if isinstance(output, torch.Tensor) else None
        self.order.append(name)
        if isinstance(output, torch.Tensor):
            self.record(name, output)
        elif isinstance(output, Mapping):
            entries = [(key, value) for key, value in output.items() if isinstance(value, torch.Tensor) and value.ndim == 4]
            for key, value in entries:
                if self.known(value) is None:  # a grid no submodule returned: a layer of its own
                    keyed = f"{name}:{key}"
                    self.shapes[keyed], self.calls[keyed] = tuple(value.shape), self.calls[name]
                    self.order.append(keyed)
                    self.record(keyed, value)
            self.mappings[name] = [self.known(value) for _, value in entries]

    def changed(self):
        """The names whose output changed in place after they returned it; releases the tensors."""
        out = {name for name, tensor, version in self.returned if tensor._version != version}
        self.returned = []
        return out
