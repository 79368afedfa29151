"""Explanations on demand: :func:`explain`, the maps of one image, in memory.

What :func:`cam_core.compute_cams` does for a dataset, done for one image
with nothing written: the same argument checks (:func:`.checks.settle_target`),
the same targets, the same engine pass and model guard (the model is put back
on its device, in its mode, with its gradients and hooks as found), the same
placement of each map in the image's frame. A map from :func:`explain`
equals the one a run stores for the same target, up to the stored 8 bits.
"""
import os
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from ..engine import CamEngine
from ..engine.detector import DetectorEngine
from ..engine.methods import resolve_methods
from ..engine.precision import check_precision
from ..engine.targets import class_index, class_name
from ..errors import CamArgumentError, CamArgumentTypeError
from ..media.geometry import apply_transforms, transform_steps
from ..media.images import ImageReadError, _to_rgb, load_rgb
from ..media.loader import Item
from ..models.cache import described, module_lock
from ..models.sources import load_model
from ..scoring.boxes import object_scores
from .batch import target_maker
from .checks import _check_device, settle_target, with_text_target
from .detect import chooser, image_box
from .explanation import Explanation
from .runner import _module_device

# ScoreCAM's and AblationCAM's extra forwards per batch, as compute_cams' default batch_size
PERTURB_BATCH = 16


def explain(image, model, layers=None, methods="gradcam", target="prediction", model_kwargs=None, transforms=None,
            classes=None, target_class=None, device="auto", eigen_smooth=False, aug_smooth=False,
            score_threshold=0.5, max_objects=20, precision="fp32"):
    """The class activation maps of one image, in memory (nothing is stored).

    For example, in a notebook::

        exp = cam_core.explain("dog.jpg", "torchvision:resnet50", methods=["gradcam", "eigencam"])
        exp[("gradcam", "layer4")]              # (H, W) float32 in [0, 1], the photo's size
        cat = cam_core.explain("dog.jpg", "torchvision:resnet50", target="tabby")
        why = exp.minus(cat)                     # where "dog" is seen and "tabby" is not

    A model given by name is loaded and probed once per process (per name and
    ``model_kwargs``; the last few are kept), so a second call costs one
    forward and one backward; a model object is probed once while it lives.

    Args:
        image: a file path, a ``PIL.Image`` (any mode: converted to RGB), a
            numpy ``uint8`` array (H, W, 3) RGB, (H, W) grey or (H, W, 4)
            RGBA, or a FiftyOne sample of an image (then ``target`` may name
            one of its fields)
        model: as for :func:`cam_core.compute_cams` (a name, a module, a
            ``TorchImageModel``, a :class:`cam_core.CamModel`), or a
            :class:`cam_core.types.ModelDescription` (used as probed)
        layers (None): module paths; None for :func:`cam_core.default_layers`
        methods ("gradcam"): a name or list of names from :data:`cam_core.METHODS`
        target ("prediction"): ``"prediction"``, a class (name, index or
            ``"class:<name>"``), or with a sample ``"field:<name>"`` (its
            label, as :func:`cam_core.compute_cams` reads it), ``"text:<prompt>"``
            for a zero-shot model (any text); detectors:
            their boxes above ``score_threshold``, those of a class, or a
            ``Detections`` field's objects
        model_kwargs (None): a name's loading arguments (``{"weights": None}``:
            torchvision's random weights; ``{"pretrained": False}``: timm's)
        transforms (None): as for :func:`cam_core.compute_cams`
        classes (None): as for :func:`cam_core.compute_cams`
        target_class (None): as for :func:`cam_core.compute_cams`
        device ("auto"): as for :func:`cam_core.compute_cams`
        eigen_smooth (False): as for :func:`cam_core.compute_cams`
        aug_smooth (False): as for :func:`cam_core.compute_cams`
        score_threshold (0.5): a detector's boxes explained: those of at least this score
        max_objects (20): the most boxes of a detector explained
        precision ("fp32"): ``"fp32"``, ``"bf16"`` or ``"fp16"``, as for :func:`cam_core.compute_cams`

    Returns:
        an :class:`cam_core.types.Explanation`: a mapping ``{(method, layer): (H, W)
        float32 array in [0, 1]}`` at the image's size, zero where the model
        did not see the image, with ``target_label``, ``target_score``,
        ``target_confidence``, ``scores`` per map and, for a detector,
        ``objects``, ``object_map(i)`` and ``object_scores``

    Raises:
        CamArgumentError: naming the refused parameter (``image`` for an image
            that cannot be read), before the model runs
    """
    methods = resolve_methods(methods)
    device = _check_device(device)
    img, sample, source = read_image(image)
    if isinstance(target, str) and target.startswith("text:"):  # a zero-shot model's prompt joins its classes
        if isinstance(model, str):  # loaded with its arguments here: the prompt goes to a copy, not the cache's
            model, model_kwargs = load_model(model, **(model_kwargs or {})), None
        model, transforms, classes = with_text_target(model, transforms, classes, target)
    description = described(model, model_kwargs, transforms, classes)
    infos = description.resolve_layers(layers)
    precision = check_precision(precision, device, methods, infos)
    samples = _collection_of(sample)
    if isinstance(target, str) and target.startswith("field:") and samples is None:
        raise CamArgumentError("target", f"target '{target}' reads a label of a FiftyOne sample in a dataset; pass "
                                         f"such a sample as image, or explain a class or the prediction")
    a = dict(target=target, target_class=target_class, score_threshold=score_threshold, max_objects=max_objects,
             faithfulness=False, all_objects=True, aug_smooth=aug_smooth)
    # the checks of compute_cams (a detector's methods, threshold and object count among them)
    spec, target_class, detector = settle_target(a, samples, description, methods, "explain", {}, ())
    cam_model = description.model
    try:
        x, frame = apply_transforms(transform_steps(cam_model.transforms), img)
    except Exception as e:
        raise CamArgumentError("image", f"the model's preprocessing failed on this image: {type(e).__name__}: {e}") from None
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        raise CamArgumentError("transforms", f"transforms must return a (3, H, W) tensor; got {type(x).__name__}")
    # what the targets' builders read of a run's plan
    plan = SimpleNamespace(segmenter=description.segmenter, detector=description.detector, target=spec,
                           target_class=target_class, classes=cam_model.classes, num_outputs=description.num_outputs,
                           dataset=None if samples is None else samples._dataset,
                           score_threshold=detector.get("score_threshold"), max_objects=detector.get("max_objects"))
    labels = [_field_label(plan, sample)] if spec.kind == "field" and not (plan.segmenter or plan.detector) else None
    group, ids = [Item(0, x, frame)], [None if sample is None else sample.id]
    module = cam_model.module
    with module_lock(module):
        home, engine = _module_device(module), None
        try:
            if plan.detector:
                engine = DetectorEngine(module.to(device), infos, methods, device, eigen_smooth=eigen_smooth,
                                        precision=precision)
                choose = chooser(plan, group, ids)
                result = engine.explain(x[None], choose)
                return _detector_explanation(plan, frame, result, cam_model.name, target, source)
            engine = CamEngine(module.to(device), infos, methods, device, PERTURB_BATCH, eigen_smooth=eigen_smooth,
                               aug_smooth=aug_smooth, precision=precision)
            result = engine.explain(x[None], target_maker(plan, group, ids, labels, tuple(x.shape[-2:])))
            canvases, seen = _placed(frame, {k: m[0] for k, m in result.maps.items()})
            c = result.indices[0]
            return Explanation(canvases, seen, frame, {k: float(p[0]) for k, p in result.peaks.items()}, _asked(target),
                               int(c), class_name(plan.classes, c), result.scores[0], result.confidences[0],
                               model=cam_model.name, source=source)
        finally:
            module.to(home)  # the model is left as found
            if engine is not None:
                engine.close()


def read_image(image):
    """``(RGB PIL image, sample or None, file path or None)`` of what :func:`explain` takes as ``image``.

    Raises:
        CamArgumentError: (``image``) for a file that cannot be read or an
            array of another shape or type; a ``TypeError`` too for another object
    """
    if isinstance(image, (str, os.PathLike)):
        return _load(os.fspath(image)), None, os.fspath(image)
    if isinstance(image, Image.Image):
        try:
            image.load()
            return _to_rgb(image), None, None
        except Exception as e:  # a lazily opened file that turns out corrupt
            raise CamArgumentError("image", f"the image could not be decoded: {e}") from None
    if isinstance(image, np.ndarray):
        return _from_array(image), None, None
    filepath = getattr(image, "filepath", None)
    if type(image).__module__.startswith("fiftyone.") and isinstance(filepath, str):
        if getattr(image, "media_type", "image") != "image":
            raise CamArgumentError("image", f"cam_core explains images; this sample's media type is '{image.media_type}'")
        return _load(filepath), image, filepath
    if isinstance(image, torch.Tensor):
        raise CamArgumentTypeError("image", "image is a tensor: pass the image itself (a path, a PIL image or a uint8 "
                                            "numpy array); the model's transforms make its input")
    raise CamArgumentTypeError("image", f"image must be a file path, a PIL image, a uint8 numpy array or a FiftyOne "
                                        f"sample; got {type(image).__name__}")


def _load(path):
    try:
        return load_rgb(path)
    except ImageReadError as e:
        raise CamArgumentError("image", str(e)) from None


def _from_array(arr):
    shapes = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))
    if arr.dtype != np.uint8 or not shapes or min(arr.shape[:2]) < 1:
        raise CamArgumentError(
            "image", f"an array image must be uint8 of shape (H, W, 3) RGB, (H, W) grey or (H, W, 4) RGBA; got "
                     f"{arr.dtype} {arr.shape}. Floats in [0, 1]: pass (a * 255).round().astype(np.uint8)")
    arr = arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr
    return _to_rgb(Image.fromarray(np.ascontiguousarray(arr)))


def _collection_of(sample):
    """A one-sample view of a sample in a dataset (a field target reads it), or None."""
    if sample is None or getattr(sample, "_dataset", None) is None or not getattr(sample, "in_dataset", True):
        return None
    return sample._dataset.select(sample.id)


def _field_label(plan, sample):
    value = sample[plan.target.field]
    if value is None or getattr(value, "label", None) is None:
        raise CamArgumentError("target", f"the sample has no label in field '{plan.target.field}'")
    return class_index(plan.classes, value.label, plan.num_outputs)


def _asked(target):
    if target is None or target == "prediction":
        return "prediction"
    if isinstance(target, str) and target.startswith(("field:", "class:", "text:")):
        return target
    return f"class:{target}"


def _placed(frame, maps):
    """Each (h, w) input-sized map placed in the image's frame at the model's
    scale (as a run stores it, before its 8 bits), on the CPU; and where the model saw."""
    cams = {k: torch.as_tensor(m) for k, m in maps.items()}
    first = next(iter(cams.values()))
    seen = frame.place(torch.ones_like(first)) > 0  # what the model saw: drawn, even where 0
    return {k: frame.place(c).float().cpu() for k, c in cams.items()}, seen.cpu()


def _detector_explanation(plan, frame, result, model_name, target, source):
    found = result.objects[0]
    boxes = [o.box for o in found]
    canvases, seen = _placed(frame, {k: m[0] for k, m in result.maps.items()})
    per_object, scores = {}, {}
    for key, rows in result.object_maps.items():
        maps = rows[0]
        scores[key] = object_scores(maps, boxes)  # in the input's pixels, as a run scores them
        per_object[key] = [frame.place(m).float().cpu() for m in maps]
    objects = [{"label": class_name(plan.classes, o.label) if o.label >= 0 else None, "index": int(o.label),
                "score": None if o.score is None else float(o.score), "box": image_box(frame, o.box)} for o in found]
    index = plan.target.class_index if plan.target.kind == "class" else None
    return Explanation(canvases, seen, frame, {k: float(p[0]) for k, p in result.peaks.items()}, _asked(target),
                       index, None if index is None else class_name(plan.classes, index), objects=objects,
                       object_canvases=per_object, object_scores=scores, model=model_name, source=source)
