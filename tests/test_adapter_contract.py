"""What a family's adapter can tell the engine beyond a module: its suggested
layers (CamModel.suggested_layers), and a detector's instance masks."""
import torch
import torchvision

import cam_core
from cam_core.models.cam_model import from_object


def _resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=3).eval()


def test_suggested_layers_replace_the_engines_default():
    module = _resnet()
    plain = cam_core.describe_model(cam_core.CamModel(module, torchvision.models.ResNet18_Weights.DEFAULT.transforms()))
    assert plain.default_layers == ["layer4"]
    model = cam_core.CamModel(module, torchvision.models.ResNet18_Weights.DEFAULT.transforms(),
                              suggested_layers=["layer2", "layer3"])
    described = cam_core.describe_model(model)
    assert described.default_layers == ["layer2", "layer3"]
    assert [i.name for i in described.resolve_layers(None)] == ["layer2", "layer3"]
    assert cam_core.default_layers(model) == ["layer2", "layer3"]
    copy = from_object(model)
    assert copy.suggested_layers == ["layer2", "layer3"] and copy.suggested_layers is not model.suggested_layers
    # a suggestion the dry forward does not confirm is not used
    model.suggested_layers = ["fc"]
    assert cam_core.describe_model(model).default_layers == ["layer4"]
