"""The engines' one forward records the autograd graph from the explained
layers on, with the parameters frozen (cam_core.engine.graph): what the graph
keeps is measured here in bytes of saved tensors (sizes, not timings); the
maps stay grad-cam's (tests/test_equivalence.py, tests/test_detector_engine.py
run through the same forward), also for a model that restores gradients
itself after a layer."""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import models
from cam_core.engine import CamEngine, probe_model, resolve_layers
from cam_core.engine.defaults import suggest_layers
from cam_core.engine.detection import predicted_objects
from cam_core.engine.detector import DetectorEngine, ObjectMaps
from cam_core.engine.targets import classifier_targets
from test_equivalence import photos, reference


def saved_bytes(fn):
    """The bytes of the tensors autograd saves for the backward while ``fn`` runs."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total[0]


def from_input(model, x):
    """The graph a forward records from an input that requires grad, the parameters as they are."""
    with torch.enable_grad():
        model(x.detach().requires_grad_(True))


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_a_detector_graph_keeps_only_what_follows_its_layer():
    model = models.small_fasterrcnn()
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    probe = probe_model(model, x[:1])
    layer = probe.layers[suggest_layers(probe, model)[0]]
    engine = DetectorEngine(model, [layer], ["gradcam"])
    ours = saved_bytes(lambda: engine.explain(x, lambda outs: [predicted_objects(o, 0.0, 2) for o in outs]))
    whole = saved_bytes(lambda: from_input(model, x))
    # measured: 86 MB against 319 MB (the backbone's activations, and each linear layer's input kept for a
    # weight gradient nobody computes)
    assert 0 < ours < 0.4 * whole, (ours, whole)
    assert all(p.requires_grad for p in model.parameters())  # frozen for the pass only


def test_a_classifier_graph_keeps_only_what_follows_its_layer():
    model = models.resnet18()
    x = photos(96)
    layers = resolve_layers(probe_model(model, x[:1]), model, ["layer4"])
    engine = CamEngine(model, layers, ["gradcam"])
    ours = saved_bytes(lambda: engine.explain(x, lambda out: classifier_targets(out, None)))
    whole = saved_bytes(lambda: from_input(model, x))
    assert 0 < ours < 0.1 * whole, (ours, whole)


class RestoresGrad(nn.Module):
    """Runs its features under ``torch.enable_grad()``: leaving the block
    restores the grad mode of before it, which turns the graph off again when
    the forward began without one."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))

    def forward(self, x):
        with torch.enable_grad():
            f = self.features(x)
        return self.head(f)


def test_a_model_that_restores_the_grad_mode_after_its_layer_gets_gradcams_maps():
    model = RestoresGrad().eval()
    x = photos(32)
    engine = CamEngine(model, resolve_layers(probe_model(model, x[:1]), model, ["features.2"]), ["gradcam"])
    res = engine.explain(x, lambda out: classifier_targets(out, None))
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    expected = reference("gradcam", model, model.features[2], x, [ClassifierOutputTarget(i) for i in res.indices])
    got = res.maps[("gradcam", "features.2")].numpy()
    assert got.max() > 0.5
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_object_maps_are_finished_when_read_with_their_own_batch_geometry():
    model = models.small_fasterrcnn()
    g = torch.Generator().manual_seed(0)
    wide, tall = [torch.rand(3, 160, 224, generator=g)], [torch.rand(3, 224, 120, generator=g)]
    probe = probe_model(model, torch.rand(1, 3, 224, 224))
    layer = probe.layers[suggest_layers(probe, model)[0]]
    engine = DetectorEngine(model, [layer], ["gradcam"])
    choose = lambda outs: [predicted_objects(o, 0.0, 3) for o in outs]  # noqa: E731
    first = engine.explain(wide, choose)
    maps = first.object_maps[("gradcam", layer.name)]
    assert isinstance(maps, ObjectMaps) and len(maps) == 1
    before = maps[0]
    assert before.shape == (3, 160, 224)
    engine.explain(tall, choose)  # another padding: the first batch's maps keep theirs
    np.testing.assert_array_equal(maps[0].numpy(), before.numpy())
