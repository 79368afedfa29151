"""Layers are found from the model: spatial outputs, token grids, defaults, clear refusals."""
import pytest
import torch
import torchvision

import cam_core
import models
from cam_core.engine import probe_model, resolve_layers


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


def avg_vit(**kw):
    """A ViT without a class token whose head averages the patch tokens
    (timm's ``fc_norm`` after the pooling, ``norm`` an Identity)."""
    import timm

    torch.manual_seed(0)
    kw = dict(dict(class_token=False, global_pool="avg", num_classes=5, depth=4), **kw)
    return timm.create_model("vit_small_patch16_224", pretrained=False, **kw).eval()


def gap_vit():
    """timm's ``vit_medium_patch16_gap_256`` layout, shrunk: no class token,
    average pooling, ``norm`` kept on the tokens and no ``fc_norm``; at 224
    pixels, the size the default ImageNet preprocessing gives."""
    import timm

    torch.manual_seed(0)
    return timm.create_model("vit_medium_patch16_gap_256", pretrained=False, num_classes=5, depth=3, img_size=224).eval()


def token_gradient(model, layer, x):
    """The gradient of the top logit, summed over the batch, with respect to
    the layer's patch tokens, as a (B, grid cells) norm per token."""
    info = probe_model(model, x[:1]).layers[layer]
    store = {}
    handle = info.module.register_forward_hook(lambda m, a, out: store.setdefault("out", out))
    try:
        logits = model(x)
        (grad,) = torch.autograd.grad(logits.max(dim=1).values.sum(), store["out"])
    finally:
        handle.remove()
    return grad[:, info.prefix_tokens :].norm(dim=-1)


def test_avg_pooled_vit_default_is_what_the_pooling_reads():
    from test_equivalence import photos

    m = avg_vit()
    assert m.num_prefix_tokens == 0 and m.global_pool == "avg"
    # the head reads every patch token of the last block's output
    assert cam_core.default_layers(m) == ["blocks.3"]
    assert (token_gradient(m, "blocks.3", photos(224)) > 0).all()
    # with a real final norm on the tokens (no fc_norm), that norm is what is pooled
    g = gap_vit()
    p = probe(g)
    assert p.layers["norm"].layout == "tokens" and p.layers["norm"].prefix_tokens == 0
    assert cam_core.default_layers(g) == ["norm"]
    assert (token_gradient(g, "norm", photos(224)) > 0).all()


def test_class_token_vit_default_is_unchanged_its_block_output_gets_no_gradient():
    from test_equivalence import photos

    m = models.deit_tiny(depth=3)
    assert cam_core.default_layers(m) == ["blocks.2.norm1"]
    x = photos(224)
    # why not the block output: the head reads only the class token there
    assert (token_gradient(m, "blocks.2", x) == 0).all()
    assert (token_gradient(m, "blocks.2.norm1", x) > 0).any()
    # a class-token ViT whose head averages the patch tokens reads them: the block output
    assert cam_core.default_layers(avg_vit(class_token=True)) == ["blocks.3"]


@pytest.mark.parametrize("factory", [avg_vit, gap_vit, models.deit_tiny])
def test_default_layer_maps_of_vits_are_not_empty(factory):
    from cam_core.engine import CamEngine
    from cam_core.engine.targets import classifier_targets
    from test_equivalence import photos

    m = factory()
    x = photos(224)
    p = probe(m)
    layers = resolve_layers(p, m, None)
    engine = CamEngine(m, layers, ["gradcam", "layercam"])
    try:
        res = engine.explain(x, lambda out: classifier_targets(out, None))
    finally:
        engine.close()
    assert len(res.maps) == 2
    for (method, layer), maps in res.maps.items():
        maps = maps.cpu().numpy()  # the engine's maps are tensors on its device
        assert maps.shape == (2, 224, 224)
        assert (maps.reshape(2, -1).max(axis=1) > 0).all(), (method, layer)


def test_describe_model_of_a_resnet():
    import json

    m = models.resnet18()
    d = cam_core.describe_model(m, classes=[f"c{i}" for i in range(1000)])
    assert d.input_size == (224, 224)  # the default ImageNet preprocessing's crop
    assert d.default_layers == ["layer4"] == cam_core.default_layers(m)
    assert d.layer_names == [i.name for i in cam_core.checks.candidate_layers(m)]
    assert "fc" not in d.layer_names
    l4 = d.layer("layer4")
    assert (l4.layout, l4.shape, l4.grid, l4.channels) == ("nchw", (1, 512, 7, 7), (7, 7), 512)
    assert d.layer("conv1").grid == (112, 112)
    assert not d.segmenter and d.num_outputs == 1000 and d.classes[3] == "c3"
    assert d.model.module is m
    # JSON for a form; the repr is a table that marks the default
    doc = json.loads(json.dumps(d.to_dict()))
    assert doc["kind"] == "classifier" and doc["default_layers"] == ["layer4"] and doc["input_size"] == [224, 224]
    assert doc["layers"][-1] == {"name": "layer4", "shape": [1, 512, 7, 7], "layout": "nchw", "grid": [7, 7],
                                 "channels": 512, "prefix_tokens": 0, "suffix_tokens": 0,
                                 "stride": None}
    assert "layer4  " in repr(d) and "<- default" in repr(d).splitlines()[-1]
    with pytest.raises(KeyError, match="not an explainable layer"):
        d.layer("fc")
    # grids follow input_size
    assert cam_core.describe_model(m, input_size=(320, 160)).layer("layer4").grid == (10, 5)
    assert cam_core.describe_model(m, input_size=96).input_size == (96, 96)


def test_describe_model_of_vits():
    d = cam_core.describe_model(models.deit_distilled(depth=2))
    info = d.layer("blocks.1.norm1")
    assert (info.layout, info.grid, info.prefix_tokens, info.stride, info.channels) == ("tokens", (14, 14), 2, (16, 16), 192)
    assert d.default_layers == ["blocks.1.norm1"] and d.classes is None and d.num_outputs == 1000
    assert d.to_dict()["layers"][d.layer_names.index("blocks.1.norm1")]["prefix_tokens"] == 2
    # a ViT that takes other sizes: the grid is the input's
    vit = cam_core.load_model("timm:vit_small_patch16_224", pretrained=False, depth=2, class_token=False,
                              global_pool="avg", num_classes=5, dynamic_img_size=True)
    d = cam_core.describe_model(vit, input_size=160)
    assert d.input_size == (160, 160) and d.default_layers == ["blocks.1"]
    assert d.layer("blocks.1").grid == (10, 10) and d.layer("blocks.1").prefix_tokens == 0
    assert d.num_outputs == 5 and d.model.module is vit.module


def test_describe_model_of_a_segmenter_and_bad_sizes():
    d = cam_core.describe_model(models.deeplab(), input_size=128)
    assert d.segmenter and d.num_outputs == 21 and d.default_layers == ["backbone.16"]
    assert d.to_dict()["kind"] == "segmenter"
    with pytest.raises(ValueError, match=r"cannot take a 160x160 input"):
        cam_core.describe_model(models.deit_tiny(depth=1), input_size=160)
    for bad in (0, (224,), "224", (224.0, 224), True):
        with pytest.raises(ValueError, match="input_size must be"):
            cam_core.describe_model(models.resnet18(), input_size=bad)


def test_a_bare_timm_module_brings_its_own_preprocessing():
    import timm

    # a 256 px ViT passed as a plain module: its own config says 256, not ImageNet's 224
    module = timm.create_model("vit_medium_patch16_gap_256", pretrained=False, depth=1, num_classes=3).eval()
    d = cam_core.describe_model(module)
    assert d.input_size == (256, 256) and not d.model.default_transforms
    assert d.layer("blocks.0").grid == (16, 16)

    # a module that does not say what it takes gets ImageNet's preprocessing; refused with what to pass
    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, x):
            return self.inner(x)

    with pytest.raises(ValueError, match=r"cannot take the 224x224 input the default ImageNet preprocessing "
                                         r"produces .*pass the transforms it was trained with \(transforms=\)"):
        cam_core.describe_model(Wrapper())
    assert cam_core.describe_model(Wrapper(), transforms=d.model.transforms).input_size == (256, 256)
