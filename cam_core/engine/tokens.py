"""Token sequences: which ``(B, N, C)`` outputs are patch tokens on a grid,
how many of their leading tokens are not patches, and the grid's size at any
input size.

Nothing is assumed: the candidate grids are those the model's own 4-D
outputs have, the input divided by the strides hierarchical transformers
shrink their grid by without a 4-D output (powers of two: Swin, PVT, MViT,
SegFormer, LeViT), and by the patch sizes and reductions the model declares
(timm's ``patch_embed.patch_size`` and ``feature_info``, a Hugging Face
config's ``patch_size``); the leading tokens that are not patches are those
the model declares (timm's ``num_prefix_tokens``; a class token and a
config's ``num_register_tokens``), or none, since a model may add its class
token late (CaiT, XCiT); a model that declares nothing may have up to
:data:`MAX_PREFIX`, the fewest that leave a grid. Tokens after the patches
are those the model declares (a Hugging Face config's
``num_detection_tokens``: YOLOS), or none.
"""
import math
from dataclasses import dataclass

MAX_PREFIX = 16
# the strides by which hierarchical transformers shrink their token grid
STRIDES = (2, 4, 8, 16, 32, 64)


@dataclass
class TokenHints:
    """What a model and its probe input tell about token grids.

    Attributes:
        input_hw: the (h, w) of the probe input
        grids: ``{(h, w): (stride_y, stride_x)}``, every candidate grid
        prefixes: the leading non-patch token counts allowed
        counts: every token count N of a 3-D output in the forward (attention
            matrices are N x N)
        suffixes: the trailing non-patch token counts allowed, the declared
            ones first (a sequence may hold them or not: YOLOS' patch
            embeddings come before its detection tokens are appended)
    """

    input_hw: tuple
    grids: dict
    prefixes: tuple
    counts: set
    suffixes: tuple = (0,)


def token_hints(model, input_hw, shapes):
    """The :class:`TokenHints` of ``model`` probed at ``input_hw``, given the
    shapes of every output of its forward (None for non-tensors)."""
    H, W = input_hw
    grids = {}

    def add(h, w, stride=None):
        if h * w > 1 and fits(h, w, H, W) and (h, w) not in grids:
            grids[(h, w)] = stride or (_stride(H, h), _stride(W, w))

    for s in shapes:  # the model's own grids come first: their strides are what they are
        if s is not None and len(s) == 4 and s[0] == 1:
            add(*s[2:])
            add(*s[1:3])
    for sy, sx in list(_declared_strides(model)) + [(s, s) for s in STRIDES]:
        add(H // sy, W // sx, (sy, sx))
        add(-(-H // sy), -(-W // sx), (sy, sx))
    declared = _declared_prefixes(model)
    prefixes = tuple(sorted({0} | declared)) if declared else tuple(range(MAX_PREFIX + 1))
    counts = {s[1] for s in shapes if s is not None and len(s) == 3 and s[1] > 1}
    suffixes = tuple(sorted(_declared_suffixes(model), reverse=True)) + (0,)
    return TokenHints(tuple(input_hw), grids, prefixes, counts, suffixes)


def token_grid(n, hints):
    """``(prefix, (h, w), stride, suffix)`` for a sequence of ``n`` tokens: the
    largest candidate grid that ``n`` minus an allowed prefix and an allowed
    suffix (a declared one before none) fills, or None."""
    best = None
    for (h, w), stride in hints.grids.items():
        suffix = next((k for k in hints.suffixes if n - h * w - k in hints.prefixes), None)
        if suffix is not None and (best is None or h * w > best[1][0] * best[1][1]):
            best = (n - h * w - suffix, (h, w), stride, suffix)
    return best


def grid_at(stride, input_hw, count):
    """The (h, w) grid of ``count`` tokens for an input of ``input_hw``: the
    input divided by ``stride``, rounded down or up (a convolution with
    padding rounds up); None when no rounding gives ``count`` tokens."""
    rows = _rounded(input_hw[0], stride[0])
    cols = _rounded(input_hw[1], stride[1])
    for h in rows:
        for w in cols:
            if h * w == count:
                return h, w
    return None


def is_attention(shape, hints):
    """Whether a 4-D output is a token-by-token matrix (attention weights,
    a position bias added to them): ``(B, heads, N, N)`` or ``(B, N, N,
    heads)`` with N a token count of the model, not a grid."""
    _, a, b, c = shape
    return (b == c and b in hints.counts) or (a == b and a in hints.counts)


def fits(h, w, H, W):
    """Whether an (h, w) grid covers an (H, W) input: each axis downsampled by
    about the same factor."""
    if not (1 <= h <= H and 1 <= w <= W):
        return False
    fh, fw = H / h, W / w
    return abs(fh - fw) <= 0.15 * max(fh, fw)


def _rounded(size, stride):
    exact = size / stride
    return sorted({max(1, math.floor(exact)), max(1, math.ceil(exact)), max(1, round(exact))})


def _stride(size, cells):
    # pixels per cell, an int when it divides (or nearly: 225 / 56)
    s = size / cells
    return round(s) if abs(s - round(s)) < 0.05 * s else round(s, 3)


def _pair(value):
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return tuple(value)
    return None


def _declared_strides(model):
    """The patch sizes and feature reductions the model's modules declare."""
    out = []
    for m in model.modules():
        for value in (getattr(m, "patch_size", None), getattr(getattr(m, "config", None), "patch_size", None)):
            pair = _pair(value)
            if pair is not None and pair not in out:
                out.append(pair)
        info = getattr(m, "feature_info", None)
        for entry in info if isinstance(info, list) else ():
            pair = _pair(entry.get("reduction")) if isinstance(entry, dict) else None
            if pair is not None and pair not in out:
                out.append(pair)
    return out


def _declared_prefixes(model):
    """The leading token counts the model's modules declare: timm's
    ``num_prefix_tokens``; a class token plus a config's ``num_register_tokens``."""
    out = set()
    for m in model.modules():
        n = getattr(m, "num_prefix_tokens", None)
        if isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_PREFIX:
            out.add(n)
        registers = getattr(getattr(m, "config", None), "num_register_tokens", None)
        if isinstance(registers, int) and not isinstance(registers, bool) and 0 < registers < MAX_PREFIX:
            out.add(1 + registers)
    return out


def _declared_suffixes(model):
    """The trailing token counts the model's modules declare: a Hugging Face
    config's ``num_detection_tokens`` (YOLOS appends them after its patches)."""
    out = set()
    for m in model.modules():
        n = getattr(getattr(m, "config", None), "num_detection_tokens", None)
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            out.add(n)
    return out
