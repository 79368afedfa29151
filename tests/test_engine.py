"""One pass per batch, one target per image, and the model left as found."""
import math

import numpy as np
import pytest
import torch
from torch import nn

import models
from cam_core.engine import CamEngine
from cam_core.engine import probe_model, resolve_layers
from cam_core.engine.targets import classifier_targets
from test_equivalence import photos

ONE_PASS = ["gradcam", "hirescam", "gradcamelementwise", "gradcamplusplus", "xgradcam", "layercam",
            "eigengradcam", "randomcam", "eigencam", "kpca_cam", "fem", "fullgrad"]


def engine_for(model, layers, methods, x, batch_size=16, **flags):
    p = probe_model(model, x[:1])
    return CamEngine(model, resolve_layers(p, model, layers), methods, batch_size=batch_size, **flags)


SMOOTH = {"eigen_smooth": True, "aug_smooth": True}


class Counter:
    """Counts the model's forwards (and the images each carried) and
    torch.autograd.grad calls."""

    def __init__(self, model, monkeypatch):
        self.forwards = 0
        self.images = []
        self.backwards = 0
        self.handle = model.register_forward_pre_hook(self._forward)
        real = torch.autograd.grad

        def grad(*args, **kwargs):
            self.backwards += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(torch.autograd, "grad", grad)

    def _forward(self, module, args):
        self.forwards += 1
        self.images.append(len(args[0]))


@pytest.mark.parametrize("flags", [{}, {"aug_smooth": True}, SMOOTH])
def test_every_gradient_and_activation_method_and_layer_from_one_forward_and_one_backward(monkeypatch, flags):
    """aug_smooth too: the six augmented copies of the batch share that pass."""
    model = models.resnet18()
    x = photos(96)
    engine = engine_for(model, ["layer2", "layer3", "layer4"], ONE_PASS, x, **flags)
    count = Counter(model, monkeypatch)
    res = engine.explain(x, lambda out: classifier_targets(out, None))
    assert count.forwards == 1
    assert count.images == [12 if flags else 2]
    assert count.backwards == 1
    assert len(res.maps) == (len(ONE_PASS) - 1) * 3 + 1  # fullgrad has one map
    assert all(p.grad is None for p in model.parameters())  # no weight gradients


@pytest.mark.parametrize("flags", [{}, SMOOTH])
def test_finercam_adds_one_backward_not_a_forward(monkeypatch, flags):
    model = models.resnet18()
    x = photos(96)
    engine = engine_for(model, ["layer4"], ["gradcam", "finercam"], x, **flags)
    count = Counter(model, monkeypatch)
    engine.explain(x, lambda out: classifier_targets(out, None))
    assert (count.forwards, count.backwards) == (1, 2)


def test_scorecam_forwards_are_batched(monkeypatch):
    model = models.resnet18()
    x = photos(64)
    engine = engine_for(model, ["layer1"], ["scorecam"], x, batch_size=24)
    count = Counter(model, monkeypatch)
    engine.explain(x, lambda out: classifier_targets(out, None))
    # the shared forward, then 64 channels per image in batches of 24
    assert count.forwards == 1 + 2 * math.ceil(64 / 24)
    assert count.backwards == 0


@pytest.mark.parametrize("flags", [{}, SMOOTH])
def test_each_image_gets_its_own_target_in_a_batch(flags):
    """grad-cam zeroes the maps of images that have no target: the engine
    must give each image of a batch the map it gets alone (with aug_smooth,
    every copy of an image its own target)."""
    model = models.resnet18()
    x = photos(96)
    x = torch.cat([x, x.flip(-1)])
    engine = engine_for(model, ["layer4"], ["gradcam", "hirescam"], x, **flags)
    classes = [3, 500, 999, 42]
    batch = engine.explain(x, lambda out: classifier_targets(out, classes))
    assert batch.indices == classes
    for b in range(4):
        alone = engine.explain(x[b : b + 1], lambda out: classifier_targets(out, classes[b : b + 1]))
        for key in batch.maps:
            assert batch.maps[key][b].max() > 0.4
            np.testing.assert_allclose(batch.maps[key][b].cpu().numpy(), alone.maps[key][0].cpu().numpy(), atol=1e-5)
            np.testing.assert_allclose(batch.peaks[key][b], alone.peaks[key][0], rtol=1e-5)


def test_batch_result_holds_tensors_on_the_device_and_numpy_peaks():
    """Every method's maps, fast or grad-cam's, are (B, H, W) float32 tensors in
    [0, 1] on the engine's device; the peaks a (B,) numpy array per map."""
    model = models.resnet18()
    x = photos(64)
    methods = ["gradcam", "eigencam", "kpca_cam", "shapleycam", "fullgrad", "finercam", "ablationcam"]
    engine = engine_for(model, ["layer3", "layer4"], methods, x)
    res = engine.explain(x, lambda out: classifier_targets(out, None))
    assert list(res.maps) == list(res.peaks)
    assert len(res.maps) == (len(methods) - 1) * 2 + 1
    for key, maps in res.maps.items():
        assert isinstance(maps, torch.Tensor) and maps.dtype == torch.float32 and maps.device == engine.device
        assert maps.shape == (2, 64, 64) and 0 <= maps.min() and maps.max() <= 1
        peaks = res.peaks[key]
        assert isinstance(peaks, np.ndarray) and peaks.shape == (2,) and peaks.dtype.kind == "f"
        assert (peaks > 0).all(), key


def snapshot(model):
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        [(n, id(m)) for n, m in model.named_modules()],
        sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()),
    )


def prepared_model():
    model = models.resnet18().train()
    model.layer1.eval()  # a mixed state is restored as it was
    for p in model.layer2.parameters():
        p.requires_grad_(False)
    model.fc.weight.grad = torch.ones_like(model.fc.weight)
    return model


def assert_same(before, after):
    modes, flags, grads, names, hooks = before
    modes2, flags2, grads2, names2, hooks2 = after
    assert modes == modes2 and flags == flags2 and names == names2 and hooks == hooks2
    for g, g2 in zip(grads, grads2):
        assert (g is None and g2 is None) or torch.equal(g, g2)


@pytest.mark.parametrize("flags", [{}, SMOOTH])
def test_model_left_as_found(flags):
    model = prepared_model()
    before = snapshot(model)
    x = photos(64)
    methods = ["gradcam", "eigencam", "ablationcam", "shapleycam", "fullgrad", "finercam"]
    if flags:  # six copies of AblationCAM's thousands of forwards add nothing here
        methods.remove("ablationcam")
    engine = engine_for(model, ["layer3", "layer4"], methods, x, **flags)
    res = engine.explain(x, lambda out: classifier_targets(out, None))
    assert res.maps[("gradcam", "layer4")].max() > 0.5
    assert_same(before, snapshot(model))


class FailsOnCall(nn.Module):
    """Wraps a model and raises on its n-th forward: a failure mid-run."""

    def __init__(self, model, n):
        super().__init__()
        self.model, self.n, self.calls = model, n, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.n:
            raise RuntimeError("boom")
        return self.model(x)


def test_model_left_as_found_after_an_exception_inside_ablationcam():
    inner = prepared_model()
    model = FailsOnCall(inner, n=3)  # 1: shared pass, 2: ablation's scores, 3: with the layer swapped
    before = snapshot(model)
    x = photos(64)
    engine = engine_for(model, ["model.layer4"], ["ablationcam"], x)
    model.calls = 0
    with pytest.raises(RuntimeError, match="boom"):
        engine.explain(x, lambda out: classifier_targets(out, None))
    assert model.calls == 3
    assert_same(before, snapshot(model))
    assert type(inner.layer4).__name__ == "Sequential"  # not grad-cam's AblationLayer
