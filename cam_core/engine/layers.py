"""Finding a model's spatial layers and turning their outputs into grids.

A layer can be explained when its output is a feature map: channels-first
``(B, C, H, W)`` (CNNs), channels-last ``(B, H, W, C)`` (Swin), or tokens
``(B, N, C)`` whose last ``N - prefix`` tokens form the patch grid (ViT, DeiT).
In a detector, each ``(B, C, H, W)`` entry of a module's mapping output (a
feature pyramid's levels) is a layer too, named ``module:key``
(``backbone.fpn:0``). All of this is read off one dry forward of the model,
never hard-coded.
"""
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from .outputs import check_differentiable, model_output
from .state import preserved_state


@dataclass
class LayerInfo:
    """A layer the engine can explain, and how to read its output as a grid.

    Attributes:
        name: the module path, as in ``model.named_modules()``
        module: the module
        shape: its output shape in the dry forward
        layout: ``"nchw"``, ``"nhwc"`` or ``"tokens"``
        prefix_tokens: leading non-patch tokens (class, distillation), tokens only
        stride: input pixels per grid cell (y, x), tokens only
        grid: the (h, w) of its grid in the dry forward
        key: for one entry of a module's mapping output (a pyramid level),
            its key; None for a module whose output is the grid
    """

    name: str
    module: nn.Module = field(repr=False)
    shape: tuple
    layout: str
    prefix_tokens: int = 0
    stride: tuple = None
    grid: tuple = None
    key: str = None

    def select(self, output):
        """This layer's tensor in its module's output (its entry of a mapping)."""
        return output if self.key is None else output[self.key]

    @property
    def channels(self):
        """The number of channels (features per grid cell)."""
        return self.shape[3] if self.layout == "nhwc" else self.shape[2] if self.layout == "tokens" else self.shape[1]

    def to_nchw(self, t, input_hw=None):
        """Returns the layer output ``t`` as a ``(B, C, H, W)`` tensor."""
        if self.layout == "nchw":
            return t
        if self.layout == "nhwc":
            return t.permute(0, 3, 1, 2)
        gh, gw = input_hw[0] // self.stride[0], input_hw[1] // self.stride[1]
        tokens = t[:, self.prefix_tokens :, :]
        if tokens.shape[1] != gh * gw:
            raise ValueError(
                f"layer '{self.name}' has {t.shape[1]} tokens; expected "
                f"{self.prefix_tokens} prefix tokens + a {gh}x{gw} grid for a "
                f"{input_hw[0]}x{input_hw[1]} input"
            )
        return tokens.reshape(t.shape[0], gh, gw, t.shape[2]).permute(0, 3, 1, 2)

    def reshape_transform(self, input_hw):
        """A grad-cam ``reshape_transform`` for this layer (None if not needed)."""
        if self.layout == "nchw":
            return None
        return lambda t: self.to_nchw(t, input_hw)


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

    The model is left as found (mode, hooks).

    Returns:
        a :class:`ModelProbe`
    """
    from .detection import InputGeometry, is_detection_output

    records, calls, order = {}, {}, []
    names = {m: n for n, m in model.named_modules() if n}
    mappings = {}  # module -> the names of its mapping output's grids
    seen = {}  # tensor id -> (the latest name that returned it, weak reference)
    returned_at = {}  # name -> its output's version when it returned it
    changed = set()  # names whose output a later in-place operation changed

    def known(tensor):
        # an id is only the same tensor while that one is alive: checked through the weak reference
        entry = seen.get(id(tensor))
        return entry[0] if entry is not None and entry[1]() is tensor else None

    def returned(tensor, name):
        # the latest module to return a tensor names it: a parent passing it on, or an in-place activation
        # after its norm, returns the same tensor, which is then no other layer
        earlier = known(tensor)
        if earlier is not None and returned_at[earlier] != tensor._version:
            changed.add(earlier)  # changed in place since that module returned it (ReLU(inplace=True), +=)
        seen[id(tensor)] = (name, weakref.ref(tensor))
        returned_at[name] = tensor._version

    def hook(module, args, output):
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        records[name] = tuple(output.shape) if isinstance(output, torch.Tensor) else None
        order.append(name)
        if isinstance(output, torch.Tensor):
            returned(output, name)
        elif isinstance(output, Mapping):
            entries = [(key, value) for key, value in output.items() if isinstance(value, torch.Tensor) and value.ndim == 4]
            for key, value in entries:
                if known(value) is None:  # a grid no submodule returned: a layer of its own
                    keyed = f"{name}:{key}"
                    records[keyed], calls[keyed] = tuple(value.shape), calls[name]
                    order.append(keyed)
                    returned(value, keyed)
            mappings[name] = [known(value) for _, value in entries]

    geometry = InputGeometry(model)
    with preserved_state(model):
        handles = [m.register_forward_hook(hook) for m in names]
        try:
            with torch.no_grad(), geometry.recording():
                raw = model(input_tensor)
        finally:
            for h in handles:
                h.remove()
    detector = is_detection_output(raw)
    out = None if detector else model_output(raw)
    check_differentiable(raw[0]["scores"] if detector else out)  # integers fail at the first backward
    if not detector:  # a mapping's entries are layers of detectors only (the engine of the others hooks modules)
        order = [n for n in order if ":" not in n]
    input_hw = tuple(input_tensor.shape[-2:])
    image_hw = input_hw
    if detector and geometry.padded_hw is not None:
        input_hw = geometry.padded_hw  # its layers are grids over the resized, padded image
    grids = [s[2:] for s in records.values() if s is not None and len(s) == 4 and s[0] == 1]
    grids += [s[1:3] for s in records.values() if s is not None and len(s) == 4 and s[0] == 1]
    prefix_hint = getattr(model, "num_prefix_tokens", None)

    layers, rejected = {}, {}
    modules = dict(model.named_modules())
    for name in dict.fromkeys(order):  # first-finish order, deduplicated
        shape = records[name]
        if calls[name] > 1:
            rejected[name] = f"it runs {calls[name]} times per forward (choose its parent block)"
            continue
        if name in changed:
            # its hook would record what a later in-place operation (ReLU(inplace=True), +=) made of it
            rejected[name] = ("its output is changed in place by a later operation (an in-place activation or "
                              "addition): explain the module after it")
            continue
        reason, info = _classify(name, shape, input_hw, grids, prefix_hint)
        if info is not None and ":" in name and info.layout != "nchw":
            reason, info = f"its output {shape} is not a channels-first pyramid level", None
        if info is None:
            rejected[name] = reason
        else:
            module_name, _, key = name.partition(":")
            info.module, info.key = modules[module_name], key or None
            layers[name] = info
    _settle_ambiguous(layers)
    for info in layers.values():
        if info.grid is None:
            info.grid = tuple(info.shape[1:3] if info.layout == "nhwc" else info.shape[2:4])
    for name in names.values():
        if name not in records:
            rejected[name] = "it did not run in the forward"
    return ModelProbe(input_hw, None if detector else tuple(out.shape), layers, rejected, list(dict.fromkeys(order)),
                      detector, image_hw, mappings)


def _classify(name, shape, input_hw, grids, prefix_hint):
    H, W = input_hw
    if shape is None:
        return "its output is not a tensor", None
    if shape[0] != 1:
        return f"its output {shape} is not per image (batch dimension {shape[0]})", None
    if len(shape) == 4:
        _, a, b, c = shape
        first = _fits(b, c, H, W)
        last = _fits(a, b, H, W)
        if first and last:
            layout = "ambiguous"  # e.g. (1, 24, 24, 24): settled by _settle_ambiguous
        elif first:
            layout = "nchw"
        elif last:
            layout = "nhwc"
        else:
            return f"its output {shape} is not a grid over the {H}x{W} input", None
        hw = (a, b) if layout == "nhwc" else (b, c)
        if hw[0] * hw[1] <= 1:
            return f"its output {shape} has a 1x1 grid", None
        return None, LayerInfo(name, None, shape, layout)
    if len(shape) == 3:
        _, n, _ = shape
        best = None
        for gh, gw in set(grids):
            prefix = n - gh * gw
            if gh * gw > 1 and 0 <= prefix <= 16 and _fits(gh, gw, H, W):
                if prefix_hint is not None and prefix != prefix_hint:
                    continue
                if best is None or gh * gw > best[0] * best[1]:
                    best = (gh, gw)
        if best is None:
            return f"its output {shape} has no token count matching a patch grid", None
        stride = (H // best[0], W // best[1])
        return None, LayerInfo(name, None, shape, "tokens", n - best[0] * best[1], stride, best)
    return f"its output {shape} has no spatial grid", None


def _settle_ambiguous(layers):
    """Decides cube-shaped outputs, where channels and grid have the same size:
    norms and linear layers work on the last axis (channels-last), convolutions
    and batch norms on the second; otherwise the model's other layers decide."""
    known = [i.layout for i in layers.values() if i.layout in ("nchw", "nhwc")]
    majority = "nhwc" if known.count("nhwc") > known.count("nchw") else "nchw"
    for info in layers.values():
        if info.layout != "ambiguous":
            continue
        if isinstance(info.module, (nn.LayerNorm, nn.Linear)):
            info.layout = "nhwc"
        elif isinstance(info.module, (nn.Conv2d, nn.BatchNorm2d, nn.GroupNorm)):
            info.layout = "nchw"
        else:
            info.layout = majority


def _fits(h, w, H, W):
    # a grid over the input: each axis downsampled by about the same factor
    if not (1 <= h <= H and 1 <= w <= W):
        return False
    fh, fw = H / h, W / w
    return abs(fh - fw) <= 0.15 * max(fh, fw)
