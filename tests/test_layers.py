"""Layers are found from the model: spatial outputs, token grids, defaults, clear refusals."""
import pytest
import torch
import torchvision

import cam_core
import models
from cam_core.layers import probe_model, resolve_layers


def probe(model, size=224):
    return probe_model(model, torch.zeros(1, 3, size, size))


def test_cnn_candidates_and_default():
    m = models.resnet18()
    p = probe(m)
    assert {"layer1", "layer2", "layer3", "layer4", "layer4.1.conv2"} <= set(p.layers)
    assert "fc" not in p.layers and "avgpool" not in p.layers  # (1, 1000) and a 1x1 grid
    assert p.layers["layer4"].layout == "nchw" and p.layers["layer4"].shape == (1, 512, 7, 7)
    assert cam_core.default_layers(m) == ["layer4"]


@pytest.mark.parametrize("factory,prefix", [(models.deit_tiny, 1), (models.deit_distilled, 2)])
def test_vit_prefix_tokens_and_grid_are_derived(factory, prefix):
    m = factory()
    p = probe(m)
    info = p.layers["blocks.11.norm1"]
    assert info.layout == "tokens" and info.prefix_tokens == prefix == m.num_prefix_tokens
    assert info.stride == (16, 16)
    assert cam_core.default_layers(m) == ["blocks.11.norm1"]
    grid = info.to_nchw(torch.zeros(2, 196 + prefix, 192), (224, 224))
    assert grid.shape == (2, 192, 14, 14)


def test_vit_grid_follows_the_input_size():
    # nothing assumes 14x14: a 160-pixel DeiT has a 10x10 grid
    m = models.deit_distilled(img_size=160)
    p = probe(m, 160)
    info = p.layers["blocks.11.norm1"]
    assert info.shape == (1, 102, 192) and info.prefix_tokens == 2
    assert info.to_nchw(torch.zeros(1, 102, 192), (160, 160)).shape == (1, 192, 10, 10)


def test_swin_channels_last():
    m = models.swin()
    info = probe(m).layers["layers.3.blocks.1.norm1"]
    assert info.layout == "nhwc" and info.shape == (1, 7, 7, 768)
    assert cam_core.default_layers(m) == ["layers.3.blocks.1.norm1"]
    assert info.to_nchw(torch.zeros(1, 7, 7, 768)).shape == (1, 768, 7, 7)


def test_torchvision_vit_and_swin_defaults():
    torch.manual_seed(0)
    vit = torchvision.models.vit_b_16(weights=None)
    assert cam_core.default_layers(vit) == ["encoder.layers.encoder_layer_11.ln_1"]
    swin = torchvision.models.swin_t(weights=None)
    assert cam_core.default_layers(swin) == ["features.7.1.norm1"]


def test_segmenter_default_is_the_backbone_last_stage():
    m = models.deeplab()
    assert cam_core.default_layers(m) == ["backbone.16"]


def test_unknown_layer_names_the_closest():
    m = models.resnet18()
    with pytest.raises(ValueError, match=r"unknown layer 'layer5'.*Closest layers: .*layer4"):
        resolve_layers(probe(m), m, ["layer5"])


def test_non_spatial_layer_is_refused():
    m = models.resnet18()
    with pytest.raises(ValueError, match=r"layer 'fc' cannot be explained: its output \(1, 1000\) has no spatial grid"):
        resolve_layers(probe(m), m, ["fc"])


def test_module_called_twice_is_refused():
    m = models.resnet18()  # BasicBlock applies its one ReLU twice
    with pytest.raises(ValueError, match="runs 2 times per forward"):
        resolve_layers(probe(m), m, ["layer1.0.relu"])


def test_probe_leaves_model_as_found():
    m = models.resnet18().train()
    hooks = sum(len(x._forward_hooks) for x in m.modules())
    probe(m)
    assert all(x.training for x in m.modules())
    assert sum(len(x._forward_hooks) for x in m.modules()) == hooks
