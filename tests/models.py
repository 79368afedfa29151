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
