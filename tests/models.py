"""Real architectures with random weights, built offline, for the tests."""
import timm
import torch
import torchvision
from torch import nn


def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def deit_distilled(**kw):
    torch.manual_seed(0)
    return timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, **kw).eval()


def deit_tiny(**kw):
    torch.manual_seed(0)
    return timm.create_model("deit_tiny_patch16_224", pretrained=False, **kw).eval()


def swin(**kw):
    torch.manual_seed(0)
    return timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, **kw).eval()


def slim_swin():
    # the Swin architecture with fewer channels, for the one-forward-per-channel methods
    return swin(embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))


def slim_deit():
    return deit_distilled(embed_dim=24, depth=2, num_heads=2)


def deeplab():
    torch.manual_seed(0)
    return torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None).eval()


class OutWrapper(nn.Module):
    """What grad-cam's tutorials wrap segmentation models in: the 'out' tensor."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


class _Slowed(nn.Module):
    """A model whose every forward takes ``seconds`` longer: a run lasts long
    enough for other processes to act in the middle of it."""

    def __init__(self, model, seconds):
        super().__init__()
        self.model = model
        self.seconds = seconds

    def forward(self, x):
        import time

        time.sleep(self.seconds)
        return self.model(x)


def slow_resnet18(seconds=0.3):
    """A seeded ResNet-18 (equal in every process) with 64x64 inputs, slowed;
    its layers are ``model.layer3``, ``model.layer4``."""
    import cam_core
    import torchvision.transforms as T

    transforms = T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()])
    return cam_core.CamModel(_Slowed(resnet18(), seconds), transforms=transforms,
                             classes=[f"class{i}" for i in range(1000)])


VOC = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
       "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


class _VocRegions(nn.Module):
    """Adds 1 to output 0 (background) on the left three quarters of the
    score grid and to output 5 (VOC 'bottle') on the rest: random weights
    score every class within ~0.05, so these decide the predicted mask."""

    def forward(self, x):
        bias = torch.zeros_like(x[:1])
        cut = max(1, 3 * x.shape[-1] // 4)
        bias[:, 0, :, :cut] = 1
        bias[:, 5, :, cut:] = 1
        return x + bias


def voc_deeplab():
    """DeepLabV3-MobileNet with VOC's 21 outputs (random weights), as a zoo
    ``entrypoint_fcn``: it predicts background on the left three quarters of
    an image and output 5 on the right quarter."""
    model = deeplab()
    model.classifier.append(_VocRegions())
    return model.eval()


def small_fasterrcnn(num_classes=4, size=224):
    """torchvision's Faster R-CNN (MobileNetV3 FPN), random weights, resizing to
    ``size`` inside, every box kept (random weights score low)."""
    torch.manual_seed(0)
    return torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=None, num_classes=num_classes, min_size=size, max_size=size,
        box_score_thresh=0.0, box_detections_per_img=10).eval()


class PlantedDetector(nn.Module):
    """A detector with a known answer, following cam_core's detector contract
    (a (B, 3, H, W) tensor in, per image ``boxes``, ``labels``, ``scores``).

    ``features`` (stride 4) has a channel that responds to red and one that
    responds to blue. Every image gets two boxes, given relative to its size:
    ``HONEST`` (label 1), scored by the blue inside it, and ``FOOLED``
    (label 2), scored by the red in ``MARK``, a region outside the box: the
    box is found by its context. A scene (``planted_scene``) has a blue
    square in each box and, when marked, a red square on ``MARK``.
    """

    HONEST = (0.55, 0.55, 0.9, 0.9)
    FOOLED = (0.1, 0.55, 0.45, 0.9)
    MARK = (0.1, 0.1, 0.35, 0.35)
    classes = ["background", "honest", "fooled"]

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        with torch.no_grad():
            self.stem.weight.zero_()
            self.stem.bias.zero_()
            self.stem.weight[0, :, 0, 0] = torch.tensor([1.0, -0.5, -0.5])  # red
            self.stem.weight[1, :, 0, 0] = torch.tensor([-0.5, -0.5, 1.0])  # blue
            self.stem.weight[2:, :, 0, 0] = 0.1  # brightness, read by nobody
        self.features = nn.Sequential(nn.ReLU(), nn.AvgPool2d(4))
        self.transforms = _to_tensor()

    @staticmethod
    def _cells(box, h, w):
        x1, y1, x2, y2 = box
        return slice(int(y1 * h), max(int(y2 * h), int(y1 * h) + 1)), slice(int(x1 * w), max(int(x2 * w), int(x1 * w) + 1))

    def forward(self, x):
        f = self.features(self.stem(x))
        gh, gw = f.shape[-2:]
        H, W = x.shape[-2:]
        out = []
        for b in range(x.shape[0]):
            ys, xs = self._cells(self.HONEST, gh, gw)
            honest = torch.sigmoid(4 * f[b, 1, ys, xs].mean() - 1)
            ys, xs = self._cells(self.MARK, gh, gw)
            fooled = torch.sigmoid(4 * f[b, 0, ys, xs].mean() - 1)
            boxes = torch.tensor([self.HONEST, self.FOOLED], dtype=x.dtype) * torch.tensor([W, H, W, H], dtype=x.dtype)
            out.append({"boxes": boxes, "labels": torch.tensor([1, 2]), "scores": torch.stack([honest, fooled])})
        return out


def _to_tensor():
    from torchvision.transforms import v2 as T

    return T.Compose([T.PILToTensor(), T.ToDtype(torch.float32, scale=True)])


def planted_scene(path, marked, size=(160, 128), seed=0):
    """Writes a grey scene with a blue square in each of PlantedDetector's
    boxes and, when ``marked``, a red square on its MARK; returns the path."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    img = np.full((h, w, 3), 110, np.uint8) + rng.integers(0, 20, (h, w, 3), dtype=np.uint8)
    for box, colour in [(PlantedDetector.HONEST, (20, 40, 230)), (PlantedDetector.FOOLED, (20, 40, 230))] + (
            [(PlantedDetector.MARK, (230, 30, 20))] if marked else []):
        x1, y1, x2, y2 = box
        # the square fills the middle of the box (or the whole mark)
        inset = 0.25 if box is not PlantedDetector.MARK else 0.0
        bw, bh = x2 - x1, y2 - y1
        img[int((y1 + inset * bh) * h):int((y2 - inset * bh) * h), int((x1 + inset * bw) * w):int((x2 - inset * bw) * w)] = colour
    Image.fromarray(img).save(path)
    return path


def planted_detector():
    """The PlantedDetector as a factory (``models:planted_detector``), for
    processes that build it from its registration (the App server, workers)."""
    import cam_core

    det = PlantedDetector()
    return cam_core.CamModel(det, det.transforms, PlantedDetector.classes)


class _Broken(nn.Module):
    """A model whose scores are broken: NaN (``"nan"``) or integers (``"int"``)."""

    def __init__(self, model, how):
        super().__init__()
        self.model, self.how = model, how

    def forward(self, x):
        out = self.model(x)
        if self.how == "nan":
            return out * float("nan")  # differentiable, and NaN: an overflow's result
        return out.round().long()


def broken_classifier(how="nan"):
    """A ResNet-18 classifier with 64 px inputs whose scores are NaN
    (``how="nan"``) or integers (``how="int"``); its layers are ``model.layer3``, ``model.layer4``."""
    import cam_core
    import torchvision.transforms as T

    transforms = T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()])
    return cam_core.CamModel(_Broken(resnet18(), how), transforms, classes=[f"class{i}" for i in range(1000)])


class _NanDetector(PlantedDetector):
    """The PlantedDetector, its scores NaN on images whose top-left pixel is brighter than ``NAN_ABOVE``."""

    NAN_ABOVE = 0.6

    def forward(self, x):
        out = super().forward(x)
        for b, o in enumerate(out):
            if float(x[b, :, 0, 0].mean()) > self.NAN_ABOVE:
                o["scores"] = o["scores"] * float("nan")
        return out


def exit_now(code=3):
    """A factory that calls sys.exit (``models:exit_now``): a model's code that ends its process."""
    import sys

    sys.exit(code)


def exit_elsewhere(pid, code=3):
    """A factory that builds the tiny ResNet in process ``pid`` and calls
    sys.exit in every other process (the App server, a delegated worker)."""
    import os
    import sys

    if os.getpid() != pid:
        sys.exit(code)
    return slow_resnet18(seconds=0.0)
