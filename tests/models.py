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
