"""Which module outputs are grids over the input, and how to read them:
channels-first ``(B, C, H, W)``, channels-last ``(B, H, W, C)`` or tokens
``(B, N, C)`` (:mod:`.tokens`); anything else is refused with the reason.
"""
from dataclasses import dataclass, field

from torch import nn

from .tokens import fits, grid_at, is_attention, token_grid


@dataclass
class LayerInfo:
    """A layer the engine can explain, and how to read its output as a grid.

    Attributes:
        name: the module path, as in ``model.named_modules()``
        module: the module
        shape: its output shape in the dry forward
        layout: ``"nchw"``, ``"nhwc"`` or ``"tokens"``
        prefix_tokens: leading non-patch tokens (class, distillation, registers), tokens only
        stride: input pixels per grid cell (y, x), tokens only: the stride the
            grid was found with (an int, or a float where it does not divide
            the input); the grid at another input size is the input over it,
            rounded down or up to the token count
        grid: the (h, w) of its grid in the dry forward
        key: for one entry of a module's mapping output (a pyramid level),
            its key; None for a module whose output is the grid
        suffix_tokens: trailing non-patch tokens (YOLOS' detection tokens), tokens only
    """

    name: str
    module: nn.Module = field(repr=False)
    shape: tuple
    layout: str
    prefix_tokens: int = 0
    stride: tuple = None
    grid: tuple = None
    key: str = None
    suffix_tokens: int = 0

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
        tokens = t[:, self.prefix_tokens : t.shape[1] - self.suffix_tokens, :]
        grid = grid_at(self.stride, input_hw, tokens.shape[1])
        if grid is None:
            gh, gw = (int(round(n / s)) for n, s in zip(input_hw, self.stride))
            after = f" + {self.suffix_tokens} trailing tokens" if self.suffix_tokens else ""
            raise ValueError(
                f"layer '{self.name}' has {t.shape[1]} tokens; expected "
                f"{self.prefix_tokens} prefix tokens + a {gh}x{gw} grid{after} for a "
                f"{input_hw[0]}x{input_hw[1]} input"
            )
        return tokens.reshape(t.shape[0], *grid, t.shape[2]).permute(0, 3, 1, 2)

    def reshape_transform(self, input_hw):
        """A grad-cam ``reshape_transform`` for this layer (None if not needed)."""
        if self.layout == "nchw":
            return None
        return lambda t: self.to_nchw(t, input_hw)


def classify(name, shape, hints):
    """``(reason, None)`` for an output that is not a grid, else ``(None, info)``
    with a :class:`cam_core.types.LayerInfo` (its module not set yet)."""
    H, W = hints.input_hw
    if shape is None:
        return "its output is not a tensor", None
    if shape[0] != 1:
        return f"its output {shape} is not per image (batch dimension {shape[0]})", None
    if len(shape) == 4:
        _, a, b, c = shape
        if is_attention(shape, hints):
            # weights over token pairs: stretched over the image they would be a picture of the matrix
            return (f"its output {shape} is a token-by-token matrix (attention weights or a position bias), "
                    f"not a grid over the image: explain the tokens it weighs (the block's norm or output)"), None
        first = fits(b, c, H, W)
        last = fits(a, b, H, W)
        if first and last:
            layout = "ambiguous"  # e.g. (1, 24, 24, 24): settled by settle_ambiguous
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
        found = token_grid(shape[1], hints)
        if found is None:
            return (f"its output {shape} has no token count matching a patch grid over the {H}x{W} input "
                    f"(a grid from the model's strides or patch size, after {_prefixes(hints)} leading tokens)"), None
        prefix, grid, stride, suffix = found
        return None, LayerInfo(name, None, shape, "tokens", prefix, tuple(stride), grid, suffix_tokens=suffix)
    return f"its output {shape} has no spatial grid", None


def _prefixes(hints):
    p = hints.prefixes
    return f"0 to {p[-1]}" if len(p) > 2 and p == tuple(range(p[-1] + 1)) else " or ".join(map(str, p))


def settle_ambiguous(layers):
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
