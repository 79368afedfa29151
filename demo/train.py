"""Training the demo's four models on the CPU, cached by a hash of their settings.

The CNN classifier, the segmenter, the ViT and the detector
(:mod:`demo.detector`); each trains in well under a minute on 2 CPU cores. Its state dict is
saved as ``<cache_dir>/<name>-<hash>.pt``, the hash covering the scene
settings, the training settings, the architecture and this module's
``VERSION``: a rerun with the same settings loads the weights instead of
training, and any change retrains.
"""
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from . import detector, models

VERSION = 1  # bump when the training code changes what it produces


def default_cache_dir():
    """``$FIFTYONE_CAM_CACHE`` or ``~/.cache/fiftyone-cam``, plus ``demo-models``."""
    root = os.environ.get("FIFTYONE_CAM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "fiftyone-cam")
    return os.path.join(root, "demo-models")


@dataclass(frozen=True)
class TrainConfig:
    """How the four models are trained (epochs, batch size, learning rates).

    ``vit_without_mark``: the ViT is trained on the same scenes with the mark
    removed, as a control (a model that has no shortcut to use). ``threads``
    is fixed (2 by default) rather than taken from the machine: with the same
    settings the same machine then gives the same weights.
    """

    cnn_epochs: int = 12
    fcn_epochs: int = 8
    vit_epochs: int = 12
    batch_size: int = 64
    cnn_lr: float = 3e-3
    fcn_lr: float = 3e-3
    vit_lr: float = 2e-3
    vit_without_mark: bool = True
    det_epochs: int = 10
    det_lr: float = 3e-3
    seed: int = 0
    threads: int = 2

    def to_dict(self):
        return asdict(self)


@dataclass
class Trained:
    """One trained model: ``model`` (a :class:`cam_core.CamModel`), whether it
    came from the cache, the seconds spent and the cache file."""

    model: object
    cached: bool
    seconds: float
    path: str


def to_tensors(scenes, transforms, clean=False):
    """The model inputs of scenes, as the models see their image files.

    Args:
        scenes: :class:`demo.data.Scene` list
        transforms: PIL -> tensor (:func:`demo.models.preprocess`)
        clean (False): use each marked scene's twin without the mark

    Returns:
        a (N, 3, H, W) float tensor (64 pixels for the classifiers, 128 for the detector)
    """
    images = [(s.clean if clean and s.clean is not None else s.image) for s in scenes]
    return torch.stack([transforms(Image.fromarray(a)) for a in images])


def to_masks(scenes, size=models.INPUT_SIZE):
    """Ground-truth masks at the model's resolution, (N, size, size) int64."""
    return torch.from_numpy(np.stack([
        np.asarray(Image.fromarray(s.mask).resize((size, size), Image.NEAREST)) for s in scenes
    ]).astype(np.int64))


def to_boxes(scenes, size):
    """Each scene's digit box as (x1, y1, x2, y2) pixels of its ``size``-pixel image, (N, 4) float."""
    b = torch.tensor([s.box for s in scenes], dtype=torch.float32) * size
    return torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], 1)


def train_models(train_scenes, scene_config, train_config=None, cache_dir=None, log=print, retrain=False):
    """Trains (or loads from the cache) the CNN classifier, the segmenter, the ViT and the detector.

    Args:
        train_scenes: the training :class:`demo.data.Scene` list
        scene_config: the :class:`demo.data.SceneConfig` they came from (part of the cache key)
        train_config (None): a :class:`TrainConfig`
        cache_dir (None): where state dicts are kept (:func:`default_cache_dir`)
        log (print): where progress lines go
        retrain (False): train even when a cached state dict exists

    Returns:
        ``{"cnn": Trained, "fcn": Trained, "vit": Trained, "det": Trained}``; each model is a
        :class:`cam_core.CamModel` with its ``transforms`` and ``classes``, in eval mode
    """
    import cam_core

    tc = train_config or TrainConfig()
    cache_dir = cache_dir or default_cache_dir()
    os.makedirs(cache_dir, exist_ok=True)
    torch.set_num_threads(tc.threads)
    classes = scene_config.classes
    transforms = models.preprocess()
    data = {}

    def inputs(clean=False):
        key = "x_clean" if clean else "x"
        if key not in data:
            data[key] = to_tensors(train_scenes, transforms, clean=clean)
            data["y"] = torch.tensor([classes.index(s.label) for s in train_scenes])
        return data[key], data["y"]

    specs = {
        "cnn": (lambda: models.DigitCNN(len(classes)), classes, transforms,
                lambda m: _fit_classifier(m, *inputs(), tc.cnn_epochs, tc.batch_size, tc.cnn_lr, 0.0, tc.seed)),
        "fcn": (lambda: models.DigitFCN(len(classes) + 1), ["background"] + classes, transforms,
                lambda m: _fit_segmenter(m, inputs()[0], to_masks(train_scenes), tc.fcn_epochs, tc.batch_size, tc.fcn_lr, tc.seed)),
        "vit": (lambda: models.digit_vit(len(classes)), classes, transforms,
                lambda m: _fit_classifier(m, *inputs(tc.vit_without_mark), tc.vit_epochs, tc.batch_size, tc.vit_lr, 0.05, tc.seed)),
        "det": (lambda: detector.DigitDetector(classes), ["background"] + classes, detector.preprocess(),
                lambda m: _fit_detector(m, train_scenes, scene_config.size, tc.det_epochs, tc.batch_size, tc.det_lr, tc.seed)),
    }
    out = {}
    for name, (build, names, model_transforms, fit) in specs.items():
        started = time.time()
        torch.manual_seed(tc.seed)
        module = build()
        key = _cache_key(name, module, scene_config, tc)
        path = os.path.join(cache_dir, f"{name}-{key}.pt")
        cached = os.path.isfile(path) and not retrain
        if cached:
            module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        else:
            fit(module)
            tmp = path + ".tmp"
            torch.save(module.state_dict(), tmp)
            os.replace(tmp, path)  # a killed run never leaves half a file under the final name
        module.eval()
        seconds = time.time() - started
        log(f"  {name}: {'loaded from cache' if cached else 'trained'} in {seconds:.1f} s ({path})")
        model = cam_core.CamModel(module, model_transforms, list(names), name=f"demo:{name}")
        out[name] = Trained(model, cached, seconds, path)
    return out


def _cache_key(name, module, scene_config, train_config):
    desc = {
        "name": name,
        "version": VERSION,
        "scenes": scene_config.to_dict(),
        # only this model's settings: changing another model's epochs keeps this cache
        "train": {k: v for k, v in train_config.to_dict().items() if k.startswith(name + "_") or "_" not in k or k == "batch_size"},
        "architecture": repr(module),
        "torch": torch.__version__.split("+")[0],
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _batches(n, batch_size, generator):
    perm = torch.randperm(n, generator=generator)
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


def _fit(model, x, y, loss, epochs, batch_size, lr, weight_decay, seed):
    """AdamW with a one-cycle schedule over shuffled batches; ``loss(model, xb, yb)``."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=weight_decay)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.15)
    model.train()
    for _ in range(epochs):
        for idx in _batches(len(x), batch_size, g):
            value = loss(model, x[idx], y[idx])
            opt.zero_grad()
            value.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


def _fit_classifier(model, x, y, epochs, batch_size, lr, weight_decay, seed):
    return _fit(model, x, y, lambda m, xb, yb: F.cross_entropy(m(xb), yb), epochs, batch_size, lr, weight_decay, seed)


def _fit_segmenter(model, x, masks, epochs, batch_size, lr, seed):
    def loss(m, xb, yb):
        out = m(xb)["out"]
        # the digits cover a few percent of the pixels: weigh the background down
        weight = torch.ones(out.shape[1])
        weight[0] = 0.1
        return F.cross_entropy(out, yb, weight=weight)

    return _fit(model, x, masks, loss, epochs, batch_size, lr, 0.0, seed)


def _fit_detector(model, scenes, size, epochs, batch_size, lr, seed):
    """The detector on the full-size scenes: targets ``[label, x1, y1, x2, y2]``
    per scene (label 1-based, 0 being the background)."""
    x = to_tensors(scenes, model.transforms)
    labels = torch.tensor([model.classes.index(s.label) for s in scenes], dtype=torch.float32)
    y = torch.cat([labels[:, None], to_boxes(scenes, size)], 1)

    def loss(m, xb, yb):
        return detector.loss(m, xb, yb[:, 1:], yb[:, 0].long())

    return _fit(model, x, y, loss, epochs, batch_size, lr, 0.0, seed)
