"""What a sweep over model families found broken in the probe, each fixed for
every model: the model's own hooks kept, attention matrices and position
tables refused, outputs changed in place by a function refused, and a model
whose output no kind matches refused before a run starts."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cam_core
import models
from cam_core.engine import probe_model, resolve_layers
from cam_core.engine.state import is_ours, preserved_state


def segformer():
    """A Hugging Face SegFormer (transformers 5) with random weights: it installs
    its output-capturing hooks on its first forward and reads the hidden states
    they capture in every forward after."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    config = SegformerConfig(num_labels=5, depths=[1, 1, 1, 1], hidden_sizes=[16, 32, 64, 128],
                             decoder_hidden_size=64, num_attention_heads=[1, 1, 2, 4])
    return SegformerForSemanticSegmentation(config).eval()


def hooks(model):
    return {(name, key, fn) for name, m in model.named_modules()
            for table in (m._forward_hooks, m._forward_pre_hooks) for key, fn in table.items()}


def test_the_hooks_a_model_installs_on_its_first_forward_are_kept():
    model = segformer()
    x = torch.rand(1, 3, 64, 64)
    assert not hooks(model)
    d = cam_core.describe_model(model, input_size=64)
    installed = hooks(model)
    assert installed, "the model installs its hooks in its first forward"
    assert all(fn.__module__.startswith("transformers.") for _, _, fn in installed)
    # the user's own call works after describe_model (it raised IndexError when the guard removed them)
    assert model(x).logits.shape == (1, 5, 16, 16)

    # and after a pass of the engine, which hooks the layers itself and removes only its own hooks
    from cam_core.engine import CamEngine
    from cam_core.engine.targets import segmenter_targets

    engine = CamEngine(model, d.resolve_layers(None), ["gradcam"])
    try:
        res = engine.explain(x, lambda out: segmenter_targets(out, [1], [None], 0))
    finally:
        engine.close()
    assert res.maps[("gradcam", d.default_layers[0])].shape == (1, 64, 64)
    assert hooks(model) == installed
    assert model(x).logits.shape == (1, 5, 16, 16)


def test_the_guard_removes_the_hooks_of_cam_core_and_grad_cam_only():
    from cam_core.engine.graph import hooked
    from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients

    model = models.resnet18()
    own = []

    def the_models_hook(module, args, output):  # defined here: not cam_core's
        own.append(1)

    with preserved_state(model):
        model.layer1.register_forward_hook(the_models_hook)
        hooked([model.layer2], {}, from_layers=False).__enter__()  # cam_core's recorder, never removed
        model.layer3.register_forward_pre_hook(is_ours, with_kwargs=True)  # any function of cam_core's
        ActivationsAndGradients(model, [model.layer4], None)  # grad-cam's, never released
    assert [fn for _, _, fn in hooks(model)] == [the_models_hook]
    assert not model.layer3._forward_pre_hooks_with_kwargs


def test_attention_matrices_and_position_tables_are_refused():
    import timm

    # CaiT and TNT compute attention explicitly: their attn_drop returns (1, heads, N, N)
    torch.manual_seed(0)
    cait = timm.create_model("cait_xxs24_224", pretrained=False, depth=2, img_size=64).eval()
    p = probe_model(cait, torch.rand(1, 3, 64, 64))
    attention = [n for n in p.rejected if n.startswith("blocks.") and n.endswith("attn.attn_drop")]
    assert attention and all("token-by-token matrix" in p.rejected[n] for n in attention)
    assert not any("attn_drop" in n or "softmax" in n for n in p.layers)
    assert cam_core.default_layers(cait) == ["blocks.1.norm1"]

    # Swin's window attention at its last stage, where one window holds every token: (1, heads, 49, 49)
    swin = models.slim_swin()
    p = probe_model(swin, torch.rand(1, 3, 224, 224))
    assert "token-by-token matrix" in p.rejected["layers.3.blocks.0.attn.softmax"]
    assert cam_core.default_layers(swin) == ["layers.3.blocks.0.norm1"]

    # a position table computed from the weights alone (Swin V2's continuous position bias)
    from transformers import Swinv2Config, Swinv2ForImageClassification

    torch.manual_seed(0)
    v2 = Swinv2ForImageClassification(Swinv2Config(image_size=64, embed_dim=16, depths=[1, 1, 2, 1],
                                                   num_heads=[1, 1, 2, 2], window_size=2, num_labels=5)).eval()
    d = cam_core.describe_model(v2, input_size=64)
    tables = [n for n in d.probe.rejected if "continuous_position_bias_mlp" in n]
    assert tables and not any("continuous_position_bias_mlp" in n for n in d.layer_names)  # not offered in a picker
    assert "carries no gradient from the image" in d.probe.rejected[tables[-1]]
    assert d.default_layers == ["swinv2.encoder.layers.3.blocks.0.layernorm_before"]


class InPlaceNet(nn.Module):
    """Convolutions whose outputs the forward changes in place through functions."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.conv3, self.conv4 = (nn.Conv2d(c, 8, 3, padding=1) for c in (3, 8, 8, 8))
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.conv1(x), inplace=True)
        x = self.conv2(x)
        x.add_(1)
        x = torch.relu_(self.conv3(x))
        x = self.conv4(x)
        return self.fc(x.mean(dim=(2, 3)))


def test_outputs_changed_in_place_by_a_function_are_refused():
    torch.manual_seed(0)
    model = InPlaceNet().eval()
    p = probe_model(model, torch.rand(1, 3, 32, 32))
    for name in ("conv1", "conv2", "conv3"):
        assert "changed in place" in p.rejected[name], name
    assert list(p.layers) == ["conv4"] and cam_core.default_layers(model) == ["conv4"]
    with pytest.raises(cam_core.CamArgumentError, match=r"layer 'conv3' cannot be explained: its output is changed "
                                                        r"in place"):
        resolve_layers(p, model, ["conv3"])

    # a real architecture: Hugging Face's ResNet adds the shortcut in place (hidden_state += residual)
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    resnet = ResNetForImageClassification(ResNetConfig(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                                       embedding_size=16, num_labels=5)).eval()
    p = probe_model(resnet, torch.rand(1, 3, 64, 64))
    block = "resnet.encoder.stages.3.layers.0"
    assert "changed in place" in p.rejected[f"{block}.layer"]
    assert block in p.layers and cam_core.default_layers(resnet) == ["resnet.encoder.stages.3"]


class AnchorScores(nn.Module):
    """A detector's raw head: (B, 4 + classes, anchors), as a YOLO module returns it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=8, padding=1)

    def forward(self, x):
        f = self.conv(x)
        return f.flatten(2), {"feats": f}


def test_a_model_no_kind_matches_is_refused_at_the_probe(dataset, image_dir):
    import fiftyone as fo

    dataset.add_sample(fo.Sample(filepath=image_dir["astronaut"]))
    with pytest.raises(cam_core.CamArgumentError, match=r"scores have shape \(1, 8, 784\) for a batch of 1: cam_core "
                                                        r"explains classifiers") as e:
        cam_core.describe_model(AnchorScores())
    assert e.value.param == "model"
    with pytest.raises(cam_core.CamArgumentError, match=r"scores have shape"):
        cam_core.compute_cams(dataset, AnchorScores(), run_key="anchors")
    assert dataset.list_runs() == [] and not [f for f in dataset.get_field_schema() if f.startswith("anchors")]


class InferenceOnly(nn.Module):
    """A wrapper whose forward runs without gradients, as inference code often does."""

    def __init__(self):
        super().__init__()
        self.net = models.resnet18()

    @torch.no_grad()
    def forward(self, x):
        return self.net(x)


def test_a_model_that_gives_no_gradient_is_refused_at_the_probe(dataset, image_dir):
    import fiftyone as fo

    dataset.add_sample(fo.Sample(filepath=image_dir["astronaut"]))
    p = probe_model(InferenceOnly(), torch.rand(1, 3, 64, 64))
    assert not p.layers and "carries no gradient from the image" in p.rejected["net.layer4"]
    with pytest.raises(cam_core.CamArgumentError, match=r"no layer with a spatial output .*: its output carries no "
                                                        r"gradient from the image") as e:
        cam_core.compute_cams(dataset, InferenceOnly(), run_key="nograd")
    assert e.value.param == "model" and dataset.list_runs() == []


def test_an_ssd_default_is_the_layer_every_level_is_computed_from():
    """SSD's heads read one feature level each: a box found at a coarse level has no gradient on the
    finest level. Its default is the backbone's features, the input of every level."""
    import torchvision
    from skimage import data
    from torchvision.transforms.functional import to_tensor

    from cam_core.engine.detection import predicted_objects
    from cam_core.engine.detector import DetectorEngine

    torch.manual_seed(0)
    model = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=4,
                                                      score_thresh=0.0, detections_per_img=8).eval()
    x = to_tensor(data.astronaut()[::2, ::2].copy())[None]
    p = probe_model(model, x)
    assert cam_core.default_layers(model) == ["backbone.features"]
    assert "backbone:0" in p.layers  # the finest level, the normalised features: read by one head only
    engine = DetectorEngine(model, resolve_layers(p, model, ["backbone.features", "backbone:0"]), ["eigengradcam"])
    res = engine.explain(x, lambda outs: [predicted_objects(o, 0.0, 8) for o in outs])
    peaks = {name: res.object_maps[("eigengradcam", name)][0].flatten(1).amax(dim=1)
             for name in ("backbone.features", "backbone:0")}
    assert len(peaks["backbone.features"]) >= 4
    assert (peaks["backbone.features"] > 0.5).all()  # every box's gradient reaches the features
    assert (peaks["backbone:0"] == 0).any()  # the former default: boxes of the coarser levels had empty maps
