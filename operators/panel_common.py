"""What the CAM panels share: the run shown, the run's model as the App
server loads it, pictures as data URIs, explanations kept for a moment.

Panels call ``cam_core`` for everything they show; this module holds only
what is the App's: which run a panel shows, how a run's recorded model name
becomes one the form's loader knows, and how a picture travels to the browser.
"""
import base64
import io
import threading
from collections import OrderedDict

COMPUTE_URI = "@fiftyone-cam/cam/compute_cams"
NONE = "(none)"  # no second class: the picked class alone
TILE_WIDTH = 150  # a map's picture, in pixels
LARGE_WIDTH = 320  # the map picked
NO_RUN = ("This dataset has no CAM run yet. Compute one with **Compute class activation maps** (the button "
          "below, or the operator browser), or from Python: `cam_core.compute_cams(dataset, model)`.")
_KEPT = 8  # explanations kept per App server process (for Save, and for a detector's other boxes)
_explanations = OrderedDict()
_lock = threading.Lock()


def run_keys(dataset):
    """The dataset's CAM runs, the most recently started first."""
    import cam_core

    keys = cam_core.list_cam_runs(dataset)
    return sorted(keys, key=lambda k: (dataset.get_run_info(k).timestamp, k), reverse=True)


def chosen_run(ctx):
    """The run the panel shows: the one picked, while it exists; else the newest (or None)."""
    keys = run_keys(ctx.dataset)
    picked = ctx.panel.get_state("run_key")
    return picked if picked in keys else (keys[0] if keys else None)


def data_uri(image, quality=85):
    """A PIL image as a ``data:image/jpeg`` URI (what an ImageView shows)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def score_line(scores, names=("target_confidence", "spread", "entropy", "mass_inside", "inside", "on_others")):
    """A map's main scores in a few words."""
    short = {"target_confidence": "conf", "mass_inside": "inside"}
    parts = []
    for n in names:
        v = scores.get(n)
        if isinstance(v, bool):
            parts.append(f"{short.get(n, n)} {'yes' if v else 'no'}")
        elif isinstance(v, (int, float)):
            parts.append(f"{short.get(n, n)} {v:.2f}")
    return " · ".join(parts)


def run_model(config):
    """The run's model as the App server loads models (once per process, with
    its lock: see :mod:`operators.models`), from the name the run recorded.

    Returns:
        a :class:`operators.models.ModelFacts`

    Raises:
        ValueError: saying why the App cannot load it
    """
    from . import models

    name, kwargs = config.model or "", dict(config.model_kwargs or {})
    lib, sep, rest = name.partition(":")
    if name in models.registered_names():
        return models.describe("registered", name)
    if sep and lib == "torchvision":
        return models.describe("torchvision", rest, pretrained=kwargs.get("weights", "DEFAULT") is not None)
    if sep and lib == "timm":
        return models.describe("timm", rest, pretrained=bool(kwargs.get("pretrained", True)))
    if sep and lib in ("ultralytics", "hf"):
        return models.describe(lib, rest)
    if name in models.model_choices("zoo"):
        return models.describe("zoo", name)
    raise ValueError(f"the run's model '{name}' was given to compute_cams as a Python object, which the App "
                     f"cannot load again: register it for the App (the register_cam_model operator, or "
                     f"cam_core.register_factory) and compute the run with that name")


def explain_for_run(sample, dataset, run_key, target):
    """``cam_core.explain`` of a sample for a target, with the run's model,
    layers, methods and settings; kept for a moment (the same call again, or
    Save, does not compute it again).

    Raises:
        ValueError or CamArgumentError: saying what was wrong
    """
    import cam_core

    config = dataset.get_run_info(run_key).config
    key = (str(dataset._doc.id), sample.id, run_key, str(target))
    with _lock:
        if key in _explanations:
            _explanations.move_to_end(key)
            return _explanations[key]
    facts = run_model(config)
    kwargs = dict(layers=[l for l in config.layers], methods=list(config.methods), target=target,
                  eigen_smooth=config.eigen_smooth, aug_smooth=config.aug_smooth)
    if config.detections_field:
        kwargs.update(score_threshold=config.score_threshold, max_objects=config.max_objects)
    with facts.lock:
        exp = cam_core.explain(sample, facts.description, **kwargs)
    with _lock:
        _explanations[key] = exp
        while len(_explanations) > _KEPT:
            _explanations.popitem(last=False)
    return exp


def keep(dataset, sample_id, run_key, exp):
    """Keeps an explanation made here (a difference of two) under its target, as :func:`explain_for_run` does."""
    with _lock:
        _explanations[(str(dataset._doc.id), sample_id, run_key, str(exp.target))] = exp
        while len(_explanations) > _KEPT:
            _explanations.popitem(last=False)


def matching_object(objects, stored):
    """The index of the object in ``objects`` (an explanation's) that is the
    stored object ``stored``: of its label, the box of highest IoU."""
    def iou(a, b):
        ax, ay, aw, ah = a
        bx, by, bw, bh = b
        w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
        h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
        union = aw * ah + bw * bh - w * h
        return w * h / union if union > 0 else 0.0

    ranked = sorted(range(len(objects)), key=lambda i: (objects[i]["label"] == stored["label"],
                                                        iou(objects[i]["box"], stored["box"])), reverse=True)
    if not ranked:
        raise ValueError("the detector finds no object in this image now: its run found them with other settings")
    return ranked[0]


def kept_explanation(dataset, sample_id, run_key, target):
    """An explanation computed a moment ago by :func:`explain_for_run`, or None."""
    with _lock:
        return _explanations.get((str(dataset._doc.id), sample_id, run_key, str(target)))


def thumbnail_source(filepath, width):
    """The image of a sample, shrunk once to twice a tile's width (tiles are made from it)."""
    import cam_core.media.images as images

    img = images.load_rgb(filepath)
    img.thumbnail((2 * width, 2 * width * max(1, img.height) // max(1, img.width) + 1))
    return img


def stored_tiles(sample, run_key, width=TILE_WIDTH):
    """The run's maps of a sample as pictures: a list of ``{"field", "method",
    "layer", "label", "caption", "uri"}`` in the run's order (methods, then layers)."""
    import cam_core
    from cam_core.media.overlay import overlay

    image = thumbnail_source(sample.filepath, width)
    out = []
    for m in cam_core.app.sample_maps(sample, run_key):
        what = f"{m['method']} / {m['layer']}" if m["layer"] else m["method"]
        out.append({"field": m["field"], "method": m["method"], "layer": m["layer"],
                    "row": m["target"] if m["saved"] else m["method"],
                    "label": f"{what}: {m['target']}" if m["saved"] else what,
                    "caption": f"{m['target']} · {score_line(m['scores'])}",
                    "uri": data_uri(overlay(image, m["map"], width))})
    return out


def rows_of(tiles, key="method"):
    """Pictures in rows, one per method (the run's maps: methods x layers)."""
    rows = {}
    for t in tiles:
        rows.setdefault(t[key], []).append(t)
    return list(rows.values())


def explanation_tiles(exp, image, width=TILE_WIDTH, index=None):
    """The maps of an explanation (``index``: its object ``index``'s own maps) as pictures."""
    from cam_core.media.overlay import fit, overlay

    size = fit(exp.image_size, width)
    out = []
    for key in exp:
        method, layer = key
        if index is None:
            cam, caption = exp.resized(key, size), score_line(exp.scores[key])
        else:
            cam, caption = exp.object_map(index, key), score_line(exp.object_scores[key][index] or {})
        out.append({"method": method, "label": f"{method} / {layer}" if layer else method, "caption": caption,
                    "uri": data_uri(overlay(image, cam, width))})
    return out


def row(columns, gap=1, **kwargs):
    """A grid of ``columns`` equal columns. (A panel's grid otherwise sizes a
    column to its widest content: a row of pictures would run off the panel.)"""
    import fiftyone.operators.types as types

    sx = {"gridTemplateColumns": f"repeat({columns}, minmax(0, 1fr))"}
    return types.GridView(orientation="horizontal", columns=columns, gap=gap, componentsProps={"grid": {"sx": sx}},
                          **kwargs)


def column(gap=2):
    """Children one under the other, none wider than the panel."""
    import fiftyone.operators.types as types

    return types.GridView(orientation="vertical", gap=gap,
                          componentsProps={"grid": {"sx": {"gridTemplateColumns": "minmax(0, 1fr)"}}})
