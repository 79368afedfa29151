"""Finding a model's spatial layers and turning their outputs into grids.

A layer can be explained when its output is a feature map: channels-first
``(B, C, H, W)`` (CNNs), channels-last ``(B, H, W, C)`` (Swin), or tokens
``(B, N, C)`` whose last ``N - prefix`` tokens form the patch grid (ViT, DeiT).
All of this is read off one dry forward of the model, never hard-coded.
"""
import difflib
from dataclasses import dataclass, field

import torch
from torch import nn

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
    """

    name: str
    module: nn.Module = field(repr=False)
    shape: tuple
    layout: str
    prefix_tokens: int = 0
    stride: tuple = None
    grid: tuple = None

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
    """

    input_hw: tuple
    output_shape: tuple
    layers: dict
    rejected: dict
    order: list

    @property
    def is_segmenter(self):
        return len(self.output_shape) == 4


def model_output(out):
    """The tensor of a model's output: ``out["out"]`` for dict outputs."""
    if isinstance(out, dict):
        if "out" in out:
            return out["out"]
        if len(out) == 1:
            return next(iter(out.values()))
        raise ValueError(f"model returned a dict with keys {list(out)}; cam_core needs an 'out' key")
    if isinstance(out, (tuple, list)):
        return out[0]
    return out


def probe_model(model, input_tensor):
    """Runs one forward of ``input_tensor`` (batch 1) and records every module's output.

    The model is left as found (mode, hooks).

    Returns:
        a :class:`ModelProbe`
    """
    records, calls, order = {}, {}, []
    names = {m: n for n, m in model.named_modules() if n}

    def hook(module, args, output):
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        records[name] = tuple(output.shape) if isinstance(output, torch.Tensor) else None
        order.append(name)

    with preserved_state(model):
        handles = [m.register_forward_hook(hook) for m in names]
        try:
            with torch.no_grad():
                out = model_output(model(input_tensor))
        finally:
            for h in handles:
                h.remove()

    input_hw = tuple(input_tensor.shape[-2:])
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
        reason, info = _classify(name, shape, input_hw, grids, prefix_hint)
        if info is None:
            rejected[name] = reason
        else:
            info.module = modules[name]
            layers[name] = info
    _settle_ambiguous(layers)
    for info in layers.values():
        if info.grid is None:
            info.grid = tuple(info.shape[1:3] if info.layout == "nhwc" else info.shape[2:4])
    for name in names.values():
        if name not in records:
            rejected[name] = "it did not run in the forward"
    return ModelProbe(input_hw, tuple(out.shape), layers, rejected, list(dict.fromkeys(order)))


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


def resolve_layers(probe, model, names):
    """Checks layer names against the probe.

    Args:
        probe: a :class:`ModelProbe`
        model: the model probed
        names: module paths, or None for :func:`default_layers`

    Returns:
        a list of :class:`LayerInfo`

    Raises:
        ValueError: for an unknown name (with the closest valid names) or a
            module that has no spatial output
    """
    if names is None:
        names = default_layers(probe, model)
    if isinstance(names, str):
        names = [names]
    if not names:
        raise ValueError("no layer given; candidates: " + _preview(list(probe.layers)))
    all_names = {n for n, _ in model.named_modules() if n}
    out = []
    for name in dict.fromkeys(names):
        if name in probe.layers:
            out.append(probe.layers[name])
            continue
        near = difflib.get_close_matches(name, list(probe.layers), n=5, cutoff=0.4)
        hint = f" Closest layers: {', '.join(near)}." if near else ""
        if name not in all_names:
            raise ValueError(f"unknown layer '{name}': the model has no module at that path.{hint}")
        reason = probe.rejected.get(name, "it has no spatial output")
        raise ValueError(f"layer '{name}' cannot be explained: {reason}.{hint}")
    return out


def default_layers(probe, model):
    """Suggested layers: for transformers the last block's first norm, or, when
    the classifier pools the patch tokens (no class token), the last block's
    output or the final norm after it; the last stage for CNNs.

    Returns:
        a list with one module path
    """
    layers = probe.layers
    if not layers:
        raise ValueError("the model has no layer with a spatial output")
    modules = dict(model.named_modules())

    # Transformers: the last block is a parent holding two or more norms
    blocks = {}
    for name, info in layers.items():
        if info.layout != "nchw" and isinstance(info.module, nn.LayerNorm) and "." in name:
            blocks.setdefault(name.rsplit(".", 1)[0], []).append(name)
    blocks = {p: ns for p, ns in blocks.items() if len(ns) >= 2}
    if blocks:
        order = [n for n, _ in model.named_modules()]
        last = max(blocks, key=order.index)
        norm1 = min(blocks[last], key=order.index)
        if layers[norm1].layout == "tokens" and _head_reads_patch_tokens(model, layers[norm1]):
            return [_pooled_token_layer(probe, last) or norm1]
        # A class-token ViT's head reads only the class token of the last
        # block's output: its patch tokens get no gradient there, so the norm
        # before attention is explained, as grad-cam recommends for ViT and Swin
        return [norm1]

    # timm CNNs describe their stages
    info = getattr(model, "feature_info", None)
    if isinstance(info, list) and info and isinstance(info[-1], dict):
        name = info[-1].get("module")
        if name in layers and layers[name].layout == "nchw":
            return [name]

    candidates = [n for n, i in layers.items() if i.layout == "nchw"] or list(layers)
    if probe.is_segmenter:
        # the backbone's last stage, not the head that produces the logits
        if "backbone" in modules:
            inner = [n for n in candidates if n.startswith("backbone.")]
            candidates = inner or candidates
        candidates = [n for n in candidates if layers[n].shape[1] != probe.output_shape[1]] or candidates
    # the stage that finishes last is the outermost module of the deepest features
    finish = {n: i for i, n in enumerate(probe.order)}
    return [max(candidates, key=lambda n: finish[n])]


def _head_reads_patch_tokens(model, info):
    """Whether a token model's classifier reads the patch tokens of the last
    block (average / max / attention pooling) rather than a class token.

    timm ViTs say how they pool (``global_pool``: ``"token"`` reads the class
    token; ``"avg"``, ``"avgmax"``, ``"max"``, ``"map"`` read the patch
    tokens). Otherwise a model without prefix tokens can only read patches; a
    model with prefix tokens is taken to read its class token (torchvision's
    ViT does).
    """
    pool = getattr(model, "global_pool", None)
    if isinstance(pool, str) and pool:
        return pool != "token"
    return info.prefix_tokens == 0


def _pooled_token_layer(probe, block):
    """The layer whose patch tokens a pooling head reads: the last norm that
    runs after the last ``block`` on the same tokens (timm's ``norm`` when its
    ``fc_norm`` is off), else the block's own output; None when the block's
    output is not a token layer (e.g. a tuple).

    For these models the last block's ``norm1`` would leave out the block's
    attention and MLP, which every patch token's path to the head goes through.
    """
    layers = probe.layers
    if block not in layers or layers[block].layout != "tokens":
        return None
    finish = {n: i for i, n in enumerate(probe.order)}
    shape = layers[block].shape
    after = [
        n for n, info in layers.items()
        if finish[n] > finish[block] and info.layout == "tokens" and info.shape == shape
        and not block.startswith(n + ".")  # a container of the blocks ends later, same output
        and _is_norm(info.module)
    ]
    return max(after, key=finish.get) if after else block


def _is_norm(module):
    # nn.LayerNorm and its subclasses, or another normalisation (timm's RmsNorm);
    # an nn.Identity standing in for a norm that is switched off is not one
    return isinstance(module, nn.LayerNorm) or type(module).__name__.endswith("Norm")


def _preview(names, k=12):
    return ", ".join(names[:k]) + (f", ... ({len(names)} in all)" if len(names) > k else "")
