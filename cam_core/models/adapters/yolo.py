"""Ultralytics YOLO (v8 and later): detection, segmentation, classification,
pose and OBB models, as ``YOLO`` objects, FiftyOne's ``FiftyOneYOLOModel``
(``fiftyone.utils.ultralytics.convert_ultralytics_model`` or the zoo), their
task modules (``DetectionModel``, ``SegmentationModel``, ``PoseModel``,
``OBBModel``, ``ClassificationModel``), or names ``"ultralytics:<name>"``.

What a user gets (see :mod:`.yolo_heads` for the outputs):

- the model's own preprocessing: a letterbox to its ``imgsz`` (640 unless
  the model says otherwise) keeping the aspect, the short side padded to a
  multiple of the stride (grey 114, centred; FiftyOne's wrapper pads to the
  full square, and is followed), RGB in [0, 1]; each map is unpadded and
  scaled back onto the whole image (:class:`Letterbox`). A classifier: its
  resize and centre crop;
- the layers the head reads: a detector's suggested layer is the finest
  feature map its head reads (P3, ``model.model.15`` in YOLOv8), which
  every box depends on (the coarser levels are computed from it); a
  classifier's is the backbone stage its head reads. Layers are named as in
  the ``YOLO`` object: ``model.model.<index>``;
- classes from ``model.names``.

``ultralytics`` (AGPL-3.0, the ``yolo`` extra) is imported here only when
such a model is passed or named.
"""
import math
import os

import cv2
import numpy as np
import torch

from ...errors import CamArgumentError
from ..cam_model import CamModel
from .yolo_heads import DETECTION_HEADS, YoloClassifier, YoloDetector

PREFIXES = ("ultralytics",)

# the task modules of ultralytics.nn.tasks this adapter claims (their subclasses too)
_TASK_MODULES = ("DetectionModel", "SegmentationModel", "ClassificationModel", "PoseModel", "OBBModel")
# the predictor's defaults (ultralytics' cfg/default.yaml)
_DEFAULTS = {"imgsz": 640, "iou": 0.7, "max_det": 300, "agnostic_nms": False}
_INSTALL = "install it with `pip install fiftyone-cam[yolo]` (ultralytics, AGPL-3.0)"


def _kind(obj):
    """``"model"`` (a ``YOLO``), ``"fiftyone"`` (a ``FiftyOneYOLOModel``), ``"task"``
    (a task module) or None, from the type's module and name alone."""
    for cls in type(obj).__mro__:
        where, name = cls.__module__, cls.__name__
        if where == "ultralytics.engine.model" and name == "Model":
            return "model"
        if where == "fiftyone.utils.ultralytics" and name == "FiftyOneYOLOModel":
            return "fiftyone"
        if where == "ultralytics.nn.tasks" and name in _TASK_MODULES:
            return "task"
    return None


def claims(obj):
    """Whether ``obj`` is an Ultralytics model this adapter explains."""
    return _kind(obj) is not None


def adapt(obj, preprocess=None):
    """The :class:`cam_core.CamModel` of a ``YOLO``, a ``FiftyOneYOLOModel``
    or a task module: the wrapped task model, its letterbox, its classes and
    its suggested layer. Nothing of ``obj`` is changed. ``preprocess`` (the
    user's transforms) is not read: YOLO's letterbox is part of the model.

    Raises:
        CamArgumentError: (``model``) for an exported model (no layers to
            hook) or a head this adapter does not explain
    """
    kind = _kind(obj)
    settings, rect, classes = [], True, None
    if kind == "fiftyone":
        yolo, classes = obj._model, getattr(obj, "classes", None)
        predictor = getattr(yolo, "predictor", None)
        args = getattr(predictor, "args", None)
        settings = [args, getattr(yolo, "overrides", None)]
        rect = bool(getattr(args, "rect", False))  # FiftyOne's letterbox fills the square unless rect is set
        task, name = yolo.model, getattr(yolo, "model_name", None)
    elif kind == "model":
        task, name = obj.model, getattr(obj, "model_name", None)
        settings = [getattr(obj, "overrides", None)]
    else:
        task, name = obj, None
    if not isinstance(task, torch.nn.Module) or _kind(task) != "task":
        raise CamArgumentError(
            "model", f"this YOLO holds a {type(task).__name__}, not a PyTorch model (an exported model: ONNX, "
                     f"TensorRT, ...): its layers cannot be hooked. Load its .pt weights instead")
    settings.append(getattr(task, "args", None))
    head = task.model[-1]
    names = classes if classes is not None else _names(task)
    stride = max(int(task.stride.max()) if hasattr(task, "stride") else 32, 32)
    imgsz = _imgsz(_setting(settings, "imgsz"), stride)
    if _is_classifier(task):
        module = YoloClassifier(task)
        transforms = _classify_transforms(task, imgsz)
        suggested = [f"model.model.{_input_index(head, len(task.model))}"]
    elif type(head).__name__ in DETECTION_HEADS:
        module = YoloDetector(task, _setting(settings, "iou"), _setting(settings, "max_det"),
                              _setting(settings, "agnostic_nms"))
        transforms = Letterbox(imgsz, stride, auto=rect)
        suggested = [f"model.model.{head.f[0]}"]  # P3: the finest level, which every box depends on
    else:
        raise CamArgumentError(
            "model", f"a YOLO model with a {type(head).__name__} head is not explained here; explained: detection, "
                     f"segmentation, pose and OBB heads ({', '.join(DETECTION_HEADS)}) and classifiers")
    return CamModel(module, transforms, names, f"ultralytics:{name}" if name else type(task).__name__,
                    suggested_layers=suggested)


def load(name, **kwargs):
    """The :class:`cam_core.CamModel` of ``"ultralytics:<name>"``.

    Args:
        name: a model yaml shipped with ultralytics (``"yolov8n.yaml"``,
            ``"yolo11s-seg.yaml"``: built offline, random weights), a weights
            file (``"yolov8n.pt"``: found as a path, in ultralytics'
            ``weights_dir``, else downloaded there), or a path to either
        **kwargs: passed to ``ultralytics.YOLO`` (e.g. ``task``)

    Raises:
        CamArgumentError: (``model``) when ultralytics is not installed, the
            yaml is unknown, or the weights cannot be downloaded
    """
    try:
        from ultralytics import YOLO
        from ultralytics.utils import SETTINGS
    except ImportError:
        raise CamArgumentError("model", f"'ultralytics:{name}' needs the ultralytics package: {_INSTALL}") from None
    source = name
    weights_dir = os.path.abspath(str(SETTINGS["weights_dir"]))
    if not name.endswith((".yaml", ".yml")) and os.path.basename(name) == name and not os.path.exists(name):
        source = os.path.join(weights_dir, name)  # found there, or downloaded there (not into the working folder)
    try:
        yolo = YOLO(source, **kwargs)
    except (ConnectionError, TimeoutError) as e:
        raise CamArgumentError(
            "model", f"cannot download the weights of 'ultralytics:{name}' (no network? {e}); put the file in "
                     f"{weights_dir} (ultralytics' weights_dir) or pass its path as 'ultralytics:/path/to/{name}'. "
                     f"Model yamls such as 'ultralytics:yolov8n.yaml' build offline with random weights") from None
    except FileNotFoundError as e:
        raise CamArgumentError(
            "model", f"ultralytics has no model '{name}' ({e}); give a yaml it ships (yolov8n.yaml, yolo11n-seg.yaml, "
                     f"...), a weights name (yolov8n.pt) or a path") from None
    model = adapt(yolo)
    model.name = f"ultralytics:{name}"
    model.kwargs = {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v) for k, v in kwargs.items()}
    return model


def _setting(sources, key):
    """The first value of ``key`` set in ``sources`` (dicts or namespaces), else the predictor's default."""
    for source in sources:
        value = source.get(key) if isinstance(source, dict) else getattr(source, key, None)
        if value is not None:
            return value
    return _DEFAULTS[key]


def _imgsz(value, stride):
    """(height, width): the predictor's size, each side a multiple of the stride (as ``check_imgsz``)."""
    if isinstance(value, str):
        value = [int(v) for v in value.strip("[]() ").split(",")]
    sides = [int(value)] * 2 if isinstance(value, (int, float)) else [int(v) for v in value] * (2 if len(value) == 1 else 1)
    return tuple(max(math.ceil(s / stride) * stride, stride) for s in sides[:2])


def _names(task):
    names = getattr(task, "names", None)
    if isinstance(names, dict):
        return [str(names[i]) for i in sorted(names)]
    return None if names is None else [str(n) for n in names]


def _is_classifier(task):
    return any(c.__name__ == "ClassificationModel" for c in type(task).__mro__)


def _input_index(head, n):
    # the layer a head reads: its `.f`, an index or -1 (the layer before it)
    f = head.f if isinstance(head.f, int) else head.f[-1]
    return f if f >= 0 else n - 1 + f


def _classify_transforms(task, imgsz):
    """The classifier's own transforms when they are for ``imgsz`` (saved in
    its weights), else ultralytics' ``classify_transforms``: resize the short
    side, centre crop, to a tensor in [0, 1] (mean 0, std 1)."""
    from torchvision import transforms as T

    own = getattr(task, "transforms", None)
    size = getattr(getattr(own, "transforms", [None])[0], "size", None)
    size = (size, size) if isinstance(size, int) else size
    if own is not None and size is not None and tuple(size) == tuple(imgsz):
        return own
    resize = imgsz[0] if imgsz[0] == imgsz[1] else imgsz
    return T.Compose([T.Resize(resize, interpolation=T.InterpolationMode.BILINEAR), T.CenterCrop(imgsz),
                      T.ToTensor()])


class Letterbox:
    """Ultralytics' letterbox as a transform: an RGB ``PIL.Image`` to a (3, H,
    W) float tensor in [0, 1], the image scaled to fit ``imgsz`` keeping its
    aspect (cv2's bilinear resize), padded with grey 114 on both sides (to a
    multiple of ``stride`` with ``auto``, else to ``imgsz``), as
    ``ultralytics.data.augment.LetterBox`` does. It says how it moves the
    frame (:func:`cam_core.media.geometry.apply_transforms`), so each map is
    unpadded and scaled back onto the image exactly.

    Args:
        imgsz: (height, width)
        stride (32): the model's largest stride
        auto (True): pad to a multiple of ``stride`` only (the predictor's
            ``rect``), else to the full ``imgsz``
    """

    def __init__(self, imgsz, stride=32, auto=True):
        self.imgsz, self.stride, self.auto = tuple(imgsz), int(stride), bool(auto)

    def __repr__(self):
        return f"Letterbox(imgsz={self.imgsz}, stride={self.stride}, auto={self.auto})"

    def params(self, size):
        """``(resized (w, h), (left, top, right, bottom))`` of an image of ``size`` (w, h)."""
        w, h = size
        r = min(self.imgsz[0] / h, self.imgsz[1] / w)
        new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
        dw, dh = self.imgsz[1] - new_w, self.imgsz[0] - new_h
        if self.auto:
            dw, dh = dw % self.stride, dh % self.stride
        dw, dh = dw / 2, dh / 2
        return (new_w, new_h), (round(dw - 0.1), round(dh - 0.1), round(dw + 0.1), round(dh + 0.1))

    def frame_change(self, size):
        """How the letterbox moves the frame of an image of ``size`` (w, h): ``(scale, offset)``."""
        (new_w, new_h), (left, top, _, _) = self.params(size)
        scale = (size[0] / new_w, size[1] / new_h)
        return scale, (-left * scale[0], -top * scale[1])

    def __call__(self, img):
        array = np.asarray(img.convert("RGB"))
        (new_w, new_h), (left, top, right, bottom) = self.params((array.shape[1], array.shape[0]))
        if (array.shape[1], array.shape[0]) != (new_w, new_h):
            array = cv2.resize(array, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        array = cv2.copyMakeBorder(array, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
        return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float().div_(255)
