"""The models the form offers, each loaded once per process with what the form needs to know.

A model is named by a source and a name:

- ``registered``: a name registered with the ``register_cam_model`` operator
  (an importable factory, stored in the database: see :mod:`cam_core.models.registry`) or
  with :func:`cam_core.register_model` in this process;
- ``torchvision`` / ``timm``: a library model, with pretrained weights or
  random ones (``pretrained=False``, which needs no download);
- ``ultralytics``: an Ultralytics YOLO name (``yolov8n.pt``: its weights,
  downloaded; ``yolov8n.yaml``: built offline with random weights);
- ``hf``: a Hugging Face transformers image classifier, semantic segmenter
  or object detector: a hub repository id (its files downloaded, or found
  in the local cache offline) or a folder written by ``save_pretrained``;
  the names offered are the cached repositories the adapter explains, and
  any other may be typed;
- ``zoo``: a FiftyOne zoo model (a ``TorchImageModel``).

Dynamic forms are resolved again at every change, so loaded models and
their layer lists are cached; a failed load is remembered for a minute so
that an offline download is not retried at every keystroke.
"""
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

SOURCES = {
    "registered": "Registered",
    "torchvision": "torchvision",
    "timm": "timm",
    "ultralytics": "Ultralytics YOLO",
    "hf": "Hugging Face transformers",
    "zoo": "FiftyOne zoo",
}
# sources whose models are named "<source>:<name>" (cam_core.load_model)
LIBRARIES = ("torchvision", "timm", "ultralytics", "hf")
# what the form says each library source offers
DESCRIPTIONS = {
    "torchvision": "torchvision.models: classifiers, segmenters and detectors",
    "timm": "timm.create_model names",
    "ultralytics": "YOLO detection, segmentation, classification, pose and OBB models: a .pt name downloads its "
                   "weights, a .yaml name builds the model with random weights (nothing to download)",
    "hf": "A Hugging Face hub repository id (e.g. google/vit-base-patch16-224: downloaded, or read from the "
          "local cache offline) or a folder written by save_pretrained, on the App server's machine: image "
          "classifiers (*ForImageClassification), semantic segmenters (*ForSemanticSegmentation) and object "
          "detectors (*ForObjectDetection: DETR family, YOLOS, RT-DETR). Cached repositories are listed; type any other",
    "zoo": "FiftyOne zoo models for classification, segmentation or detection (Torch; torchvision detectors)",
}
# what the form's target inputs say, per model kind (ModelDescription.kind)
TARGET_TEXT = {
    "classifier": {
        "field_type": "Classification", "prediction": "The model's top class",
        "label_field": "Each sample's Classification label",
        "field": "A Classification field, mapped to the model's classes by name",
        "class": "The same class for every sample", "class_input": "Every map explains this class",
    },
    "segmenter": {
        "field_type": "Segmentation", "prediction": "The model's top class (most frequent predicted class, over its region)",
        "label_field": "Each sample's Segmentation label", "field": "A Segmentation field (its region is explained)",
        "class": "The same class for every sample", "class_input": "Every map explains this class",
    },
    "detector": {
        "field_type": "Detections", "prediction": "Each box of score >= the score threshold ({threshold})",
        "label_field": "Each sample's Detections: its objects, matched to the detector's boxes",
        "field": "A Detections field: its objects, matched to the detector's boxes (IoU > 0.5, same label)",
        "class": "Every image's boxes of this class (score >= the score threshold)",
        "class_input": "Each image's boxes of this class are explained",
    },
}

_CACHE_SIZE = 2  # models held by the App server at once
_FAILURE_TTL = 60.0
RANDOM_WEIGHTS_SEED = 0  # pretrained=False library models: the same random weights in every process
_cache = OrderedDict()
_failures = {}
_cache_lock = threading.Lock()


@dataclass
class ModelFacts:
    """A loaded model's :class:`cam_core.types.ModelDescription`, whose attributes
    are read through (``model``, ``layers``, ``default_layers``, ``classes``,
    ``num_outputs``, ``segmenter``, ``detector``, ``kind``, ``layer_names``), and its lock.

    Attributes:
        description: the :class:`cam_core.types.ModelDescription`
        lock: held while the model is probed or explained: hooks are per
            module, so two jobs on one module at once would mix their records
    """

    description: object
    lock: object = field(default_factory=threading.Lock, repr=False)

    def __getattr__(self, name):
        if name == "description":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.description, name)


def parse_model(model):
    """Splits what a Python user passes as ``model`` into ``(source, name)``.

    ``"torchvision:resnet50"``, ``"timm:deit_tiny_patch16_224"``,
    ``"ultralytics:yolov8n.pt"`` and ``"hf:<hub repository or folder>"`` name
    library models; a registered name is ``registered``; anything else is
    taken as a FiftyOne zoo model name.
    """
    if not isinstance(model, str) or not model:
        raise ValueError(
            f"model must be a name such as 'torchvision:resnet50', 'timm:<name>', a zoo model "
            f"name or a registered name; got {model!r}. To use a model object, register a "
            f"factory for it (register_cam_model) or call cam_core.compute_cams directly"
        )
    lib, sep, name = model.partition(":")
    if sep and lib in LIBRARIES:
        return lib, name
    if model in registered_names():
        return "registered", model
    return "zoo", model


def registered_names():
    """Registered names: factories in the database, then this process's
    :func:`cam_core.register_model` names."""
    import cam_core

    names = list(cam_core.checks.registered_factories())
    names += [n for n in cam_core.checks.registered_models() if n not in names]
    return names


def model_choices(source):
    """The model names offered for a source, for the form's dropdown."""
    if source == "registered":
        return registered_names()
    if source == "torchvision":
        import torchvision.models as tvm

        names = tvm.list_models(module=tvm) + tvm.list_models(module=tvm.segmentation)
        return sorted(names + tvm.list_models(module=tvm.detection))
    if source == "timm":
        import timm

        return timm.list_models()
    if source == "ultralytics":
        return ultralytics_names()
    if source == "hf":
        return hf_names()
    if source == "zoo":
        import fiftyone.zoo as foz

        names = set()
        for task in ("classification", "segmentation", "detection"):  # tags in a list must all match
            try:
                found = foz.list_zoo_models(tags=["torch", task])
                names.update(found if task != "detection" else [n for n in found if _torchvision_detector(n)])
            except Exception:  # the manifest may be unreadable
                pass
        return sorted(names)
    raise ValueError(f"unknown model source {source!r}; choose one of {', '.join(SOURCES)}")


def ultralytics_names():
    """The YOLO names offered: ultralytics' released weights of the
    detection, segmentation, classification, pose and OBB models it
    explains (``yolov8n.pt``, ...), and the model yamls it ships for them
    (``yolov8n.yaml``: random weights, built offline)."""
    import importlib.util
    import pathlib
    import re

    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    released = [n for n in GITHUB_ASSETS_NAMES if re.fullmatch(
        r"yolo(v5\w+u|v8[nsmlx]|v9[tsmce]|v10[nsmblx]|11[nsmlx]|12[nsmlx]|26[nsmlx])(-seg|-cls|-pose|-obb|-oiv7)?\.pt", n)]
    folder = pathlib.Path(importlib.util.find_spec("ultralytics").origin).parent / "cfg" / "models"
    shipped = {p.name for p in folder.rglob("*.yaml")}
    yamls = []
    for name in released:
        yaml = name[:-3].replace("-oiv7", "") + ".yaml"
        # ultralytics reads "yolov8n-seg.yaml" as the scale "n" of "yolov8-seg.yaml"
        if yaml in shipped or re.sub(r"(\d+)([nslmxbtce])(.+)?$", r"\1\3", yaml[:-5]) + ".yaml" in shipped:
            yamls.append(yaml)
    return sorted(set(released) | set(yamls))


def hf_names():
    """The Hugging Face names offered: the model repositories of the local
    hub cache (readable offline) whose config names an architecture the
    adapter explains (:mod:`cam_core.models.adapters.hf`). Read with
    ``huggingface_hub``: transformers itself is not imported."""
    import json
    import pathlib

    from cam_core.models.adapters.hf import explained

    try:
        from huggingface_hub import scan_cache_dir

        repos = scan_cache_dir().repos
    except Exception:  # no cache yet (CacheNotFound), or huggingface_hub not installed: nothing cached to offer
        return []
    names = set()
    for repo in repos:
        if repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            config = pathlib.Path(revision.snapshot_path) / "config.json"
            try:
                architectures = json.loads(config.read_text()).get("architectures") or []
            except (OSError, ValueError, AttributeError):
                continue
            if any(isinstance(a, str) and explained(a) for a in architectures):
                names.add(repo.repo_id)
    return sorted(names)


def random_weights(source, name, pretrained=True):
    """Whether a model is built with random weights (different in every process unless seeded)."""
    if source == "ultralytics":
        return name.endswith((".yaml", ".yml"))
    return source in ("torchvision", "timm") and not pretrained


def _torchvision_detector(name):
    """Whether a zoo detection model is a torchvision detector (the zoo's
    other detectors, YOLO or transformers, return no boxes per image)."""
    import fiftyone.zoo as foz

    config = foz.get_zoo_model(name).default_deployment_config_dict or {}
    entrypoint = (config.get("config") or {}).get("entrypoint_fcn") or ""
    return isinstance(entrypoint, str) and entrypoint.startswith("torchvision.models.detection")


def describe(source, name, pretrained=True):
    """Loads a model (once per process) and probes it.

    Args:
        source: a key of :data:`SOURCES`
        name: the model's name in that source
        pretrained (True): torchvision / timm only: pretrained weights (a
            download) or random ones

    Returns:
        a :class:`ModelFacts`

    Raises:
        ValueError: when the model cannot be loaded or has no explainable layer
    """
    key = _cache_key(source, name, pretrained)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        failed = _failures.get(key)
        if failed and time.time() - failed[0] < _FAILURE_TTL:
            raise ValueError(failed[1])
    try:
        facts = probe(_load(source, name, pretrained))
    except Exception as e:
        message = _load_error(source, name, pretrained, e)
        with _cache_lock:
            _failures[key] = (time.time(), message)
        raise ValueError(message) from None
    with _cache_lock:
        _failures.pop(key, None)
        _cache[key] = facts
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return facts


def _cache_key(source, name, pretrained):
    if source == "registered":
        # a factory registered again under the same name is a new model
        import json

        import cam_core

        entry = cam_core.checks.registered_factories().get(name)

        return (source, name, json.dumps(entry, sort_keys=True, default=str))
    if source in ("torchvision", "timm"):
        return (source, name, bool(pretrained))
    return (source, name)


def _load(source, name, pretrained):
    import cam_core

    if source == "registered":
        if name in cam_core.checks.registered_factories():
            return cam_core.checks.build_factory(name)
        return cam_core.load_model(name)
    if random_weights(source, name, pretrained):
        import torch

        # random weights, the same in every process (App server starts, workers),
        # without changing the caller's random state
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            if source == "torchvision":
                return cam_core.load_model(f"torchvision:{name}", weights=None)
            if source == "ultralytics":
                return cam_core.load_model(f"ultralytics:{name}")
            return cam_core.load_model(f"timm:{name}", pretrained=False)
    if source == "torchvision":
        return cam_core.load_model(f"torchvision:{name}")
    if source == "timm":
        return cam_core.load_model(f"timm:{name}", pretrained=True)
    if source == "ultralytics":
        return cam_core.load_model(f"ultralytics:{name}")  # its weights: found locally or downloaded
    if source == "hf":
        return cam_core.load_model(f"hf:{name}")  # a folder, the cache, else downloaded
    if source == "zoo":
        return cam_core.load_model(name)
    raise ValueError(f"unknown model source {source!r}; choose one of {', '.join(SOURCES)}")


def probe(model):
    """One dry forward of a :class:`cam_core.CamModel` (:func:`cam_core.describe_model`):
    its layers, kind and suggested layers.

    Returns:
        a :class:`ModelFacts`
    """
    import cam_core

    return ModelFacts(cam_core.describe_model(model))


def _load_error(source, name, pretrained, error):
    what = f"{source}:{name}" if source in LIBRARIES else name
    if source == "hf" and isinstance(error, ValueError) and f"'{what}'" in str(error):
        return str(error)  # the adapter's message names the model and what may be given
    message = f"cannot load model '{what}': {error}"
    if source in ("torchvision", "timm") and pretrained:
        message += ". Pretrained weights are downloaded; untick 'Pretrained weights' to use random ones"
    if source == "zoo":
        message += ". Zoo models download their weights on first use"
    return message
