"""Which layers a user means: checking the names asked for, and the
suggested layers of a model when none are named.

Both work on a :class:`cam_core.engine.layers.ModelProbe` (one dry forward).
"""
import difflib
import re

from torch import nn

from ..errors import CamArgumentError


def resolve_layers(probe, model, names):
    """Checks layer names against the probe.

    Args:
        probe: a :class:`ModelProbe`
        model: the model probed
        names: module paths, or None for :func:`suggest_layers`

    Returns:
        a list of :class:`LayerInfo`

    Raises:
        CamArgumentError: (``layers``) for no name, an unknown name (with the
            closest valid names) or a module that has no spatial output
    """
    if names is None:
        names = suggest_layers(probe, model)
    if isinstance(names, str):
        names = [names]
    if not names:
        suggested = ", ".join(suggest_layers(probe, model))
        raise CamArgumentError(
            "layers", f"choose at least one layer (suggested: {suggested}); candidates: {_preview(list(probe.layers))}"
        )
    all_names = {n for n, _ in model.named_modules() if n}
    out = []
    for name in dict.fromkeys(names):
        if name in probe.layers:
            out.append(probe.layers[name])
            continue
        near = difflib.get_close_matches(name, list(probe.layers), n=5, cutoff=0.4)
        hint = f" Closest layers: {', '.join(near)}." if near else ""
        if name not in all_names:
            raise CamArgumentError("layers", f"unknown layer '{name}': the model has no module at that path.{hint}")
        reason = probe.rejected.get(name, "it has no spatial output")
        raise CamArgumentError("layers", f"layer '{name}' cannot be explained: {reason}.{hint}")
    return out


def suggest_layers(probe, model):
    """Suggested layers: for transformers the last block's first norm, or, when
    the classifier pools the patch tokens (no class token), the last block's
    output or the final norm after it; the last stage for CNNs. A
    classifier's is on the grid of its deepest features (its last stage, the
    one its head reads, whatever its layout); a segmenter's is its backbone's
    last stage; a detector's the backbone stage every head reads.

    Returns:
        a list with one module path
    """
    layers = probe.layers
    if not layers:
        raise CamArgumentError("model", _no_layer_message(probe))
    # a classifier's deepest features: the grid of the layer that finishes last (its head pools it)
    classifier = not (probe.detector or probe.is_segmenter)
    finish = {n: i for i, n in enumerate(probe.order)}
    final = layers[max(layers, key=finish.get)].grid if classifier else None

    block = _last_block(probe, model, final)
    if block is not None:
        last, norm1 = block
        if layers[norm1].layout == "tokens" and _head_reads_patch_tokens(model, layers[norm1]):
            return [_pooled_token_layer(probe, last) or norm1]
        # A class-token ViT's head reads only the class token of the last
        # block's output: its patch tokens get no gradient there, so the norm
        # before attention is explained, as grad-cam recommends for ViT and Swin
        return [norm1]

    # timm models describe their stages: a classifier's last stage may be channels-last or tokens
    info = getattr(model, "feature_info", None)
    if isinstance(info, list) and info and isinstance(info[-1], dict):
        name = info[-1].get("module")
        if name in layers and (layers[name].layout == "nchw" or (layers[name].grid == final and
                                                                  _reads_patches(model, layers[name]))):
            return [name]

    if probe.detector:
        return _detector_layer(probe)
    candidates = [n for n, i in layers.items() if i.layout == "nchw"] or list(layers)
    if classifier:
        # the deepest grid, whatever its layout (LeViT's tokens, MambaOut's channels-last stages), and
        # not a stem of another layout that happens to finish last among its kind
        deepest = [n for n, i in layers.items() if i.grid == final and _reads_patches(model, i)]
        candidates = [n for n in deepest if layers[n].layout == "nchw"] or deepest or candidates
    if probe.is_segmenter:
        # the backbone's last stage, not the head that produces the logits
        candidates = _backbone(candidates, layers, finish)
        candidates = [n for n in candidates if layers[n].shape[1] != probe.output_shape[1]] or candidates
    # the stage that finishes last is the outermost module of the deepest features
    return [max(candidates, key=lambda n: finish[n])]


def _backbone(candidates, layers, finish):
    """The candidates inside a segmenter's backbone: the outermost module that
    computes the coarsest grid first (the deepest features) and not the
    layer that finishes last (the head's)."""
    area = {n: layers[n].grid[0] * layers[n].grid[1] for n in candidates}
    coarsest = min(area.values())
    first = min((n for n in candidates if area[n] == coarsest), key=finish.get)
    head = max(candidates, key=finish.get)
    parts = first.split(".")
    for k in range(1, len(parts)):
        prefix = ".".join(parts[:k])
        if not (head == prefix or head.startswith(prefix + ".")):
            return [n for n in candidates if n == prefix or n.startswith(prefix + ".")]
    return candidates


def _last_block(probe, model, final):
    """A transformer's last block and its first norm: the last parent holding
    two or more layer norms on one grid (``norm1``, ``norm2``; not a list of
    the final norms of two branches), on the ``final`` grid when given (not a
    stem that has two norms); None if the model has none."""
    layers = probe.layers
    blocks = {}
    for name, info in layers.items():
        if info.layout != "nchw" and isinstance(info.module, nn.LayerNorm) and "." in name:
            blocks.setdefault(name.rsplit(".", 1)[0], []).append(name)
    blocks = {p: ns for p, ns in blocks.items() if len(ns) >= 2 and len({layers[n].grid for n in ns}) == 1
              and (final is None or layers[ns[0]].grid == final)}
    if not blocks:
        return None
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    last = max(blocks, key=order.get)
    return last, min(blocks[last], key=order.get)


def _reads_patches(model, info):
    # a token layer whose class token alone reaches the head gives its patch tokens no gradient
    return info.layout != "tokens" or info.prefix_tokens == 0 or _head_reads_patch_tokens(model, info)


def _no_layer_message(probe):
    # the most common reason, its shapes left out so that one kind of refusal counts once
    reasons = {}
    for reason in probe.rejected.values():
        kind = re.sub(r"\s*\([^)]*\)", "", reason)
        reasons[kind] = reasons.get(kind, 0) + 1
    common = max(reasons, key=reasons.get, default=None)
    said = f"; {reasons[common]} of its {len(probe.rejected)} modules: {common}" if common else ""
    return f"the model has no layer with a spatial output (a grid over the image){said}"


def _detector_layer(probe):
    """A detector's backbone stage that every head reads: the deepest layer
    computed before its feature pyramid (whose levels a Faster R-CNN box head
    reads one per box, by box size, so one level's map of a box may be
    empty). Without a pyramid (SSD, whose heads read one level each), the
    deepest layer on the finest level's grid computed before the first level
    a module returns: every level is computed from it.

    The pyramid is the first module to return a mapping of two or more grids
    with one channel count (an FPN's levels); a backbone's stages returned as
    a mapping have different ones."""
    layers, finish = probe.layers, {n: i for i, n in enumerate(probe.order)}
    maps = {m: [n for n in names if n in layers] for m, names in probe.mappings.items()}
    pyramid = next((m for m in probe.order if len(maps.get(m, ())) >= 2
                    and len({layers[n].channels for n in maps[m]}) == 1), None)
    if pyramid is not None:
        # the pyramid's own submodules finish before it: they are part of it, not its input
        before = [n for n, i in layers.items() if i.layout == "nchw" and i.key is None
                  and finish[n] < finish[pyramid] and not n.startswith(pyramid + ".")]
        if before:
            return [max(before, key=finish.get)]
    outputs = [m for m in probe.order if maps.get(m)]
    if outputs:
        last = maps[max(outputs, key=finish.get)]
        finest = max(last, key=lambda n: layers[n].grid[0] * layers[n].grid[1])
        # every level is computed from what was computed before the first level a module returns: the
        # deepest layer on the finest grid by then (SSD's features, whose normalised copy is its first
        # level and the input of the others): a box scored at any level has a gradient there
        returned = [n for n in last if layers[n].key is None]
        if returned:
            first = min(returned, key=finish.get)
            before = [n for n, i in layers.items() if i.layout == "nchw" and i.key is None
                      and finish[n] <= finish[first] and i.grid == layers[finest].grid]
            if before:
                return [max(before, key=finish.get)]
        return [finest]
    return [max(layers, key=finish.get)]


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
