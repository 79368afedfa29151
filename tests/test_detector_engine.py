"""DetectorEngine on torchvision detectors (random weights, no downloads)
against grad-cam's own per-object loop: one GradCAM call per image and box."""
import warnings

import cv2
import numpy as np
import pytest
import torch
import torchvision.models.detection as tvd
from pytorch_grad_cam import EigenCAM, GradCAM

from cam_core.engine.defaults import suggest_layers
from cam_core.engine.detection import InputGeometry, LabelledBoxTarget, predicted_objects
from cam_core.engine.detector import DetectorEngine, check_detector_methods
from cam_core.engine.layers import probe_model
from cam_core.errors import CamArgumentError

# input size (square, a multiple of 32 = min_size = max_size: no resize, no padding) and builder kwargs
SMALL_RPN = dict(rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=100, box_detections_per_img=20)
BUILDERS = {
    "fasterrcnn_mobilenet_v3_large_fpn": (224, dict(min_size=224, max_size=224, box_score_thresh=0.0, **SMALL_RPN)),
    "retinanet_resnet50_fpn": (160, dict(min_size=160, max_size=160, score_thresh=0.0, detections_per_img=20)),
    "fcos_resnet50_fpn": (160, dict(min_size=160, max_size=160, score_thresh=0.0, detections_per_img=20)),
    "ssdlite320_mobilenet_v3_large": (320, dict(score_thresh=0.0, detections_per_img=20)),
}
FRCNN, SSD = "fasterrcnn_mobilenet_v3_large_fpn", "ssdlite320_mobilenet_v3_large"
_cache = {}


def build(name, **kw):
    key = (name, tuple(sorted(kw.items())))
    if key not in _cache:
        torch.manual_seed(0)
        model = getattr(tvd, name)(weights=None, weights_backbone=None, num_classes=4, **{**BUILDERS[name][1], **kw})
        if name == SSD:  # random SSDLite activations vanish (1e-14): set its batch norms from one batch
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.momentum = 1.0
            with torch.no_grad():
                model.backbone.train()((images(4, 320, seed=99) - 0.45) / 0.22)
        _cache[key] = model.eval()
    return _cache[key]


def images(n, size, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, *((size, size) if isinstance(size, int) else size), generator=g)


def choose(k):
    """k objects per image (a list: one count per image), threshold 0."""
    return lambda outs: [predicted_objects(o, 0.0, k if isinstance(k, int) else k[i]) for i, o in enumerate(outs)]


def grad_cam(cls, model, module, x, targets):
    """grad-cam's maps of x (B, H, W); empty where no target matches an output box (grad-cam raises)."""
    cam = cls(model, [module])
    try:
        return cam(x, targets=targets)
    except RuntimeError as e:  # the loss is a constant 0: nothing to differentiate
        assert "does not require grad" in str(e)
        return np.zeros((x.shape[0], *x.shape[-2:]), np.float32)
    finally:
        cam.activations_and_grads.release()  # its hooks would stay on the model


def sample_target(objects):
    # grad-cam's FasterRCNNBoxScoreTarget with every box, each matched among its label's boxes as cam_core's are
    return LabelledBoxTarget([o.label for o in objects], [np.asarray(o.box, np.float32) for o in objects])


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's and grad-cam's deprecation warnings
        yield


@pytest.mark.parametrize("name", list(BUILDERS))
def test_per_object_maps_match_gradcam(name):
    model, size = build(name), BUILDERS[name][0]
    x = images(2, size)
    probe = probe_model(model, x[:1])
    assert probe.detector and probe.image_hw == (size, size) and probe.input_hw == (size, size)
    [suggested] = suggest_layers(probe, model)
    assert suggested in probe.layers
    layer = probe.layers[suggested]
    assert layer.key is None and layer.layout == "nchw"
    engine = DetectorEngine(model, [layer], ["gradcam"])
    key = ("gradcam", layer.name)
    res = engine.explain(x, choose(2))
    assert res.maps[key].shape == (2, size, size)
    assert [len(o) for o in res.objects] == [2, 2] and all(o.score is not None for r in res.objects for o in r)
    # the k-th backward is grad-cam on the batch with each image's k-th target
    for k in range(2):
        expected = grad_cam(GradCAM, model, layer.module, x, [res.objects[b][k].target for b in range(2)])
        np.testing.assert_allclose(torch.stack([res.object_maps[key][b][k] for b in range(2)]).numpy(), expected,
                                   atol=1e-5)
    expected = grad_cam(GradCAM, model, layer.module, x, [sample_target(r) for r in res.objects])
    np.testing.assert_allclose(res.maps[key].numpy(), expected, atol=1e-5)  # the sample map: all boxes at once

    peaks = []
    # grad-cam's own loop: each image alone, with that forward's own boxes (a box a few ulps off, the
    # batch's, sits off the kink of the target's IoU at the box: RetinaNet's maps then differ completely)
    for b in range(2):
        alone = engine.explain(x[b:b + 1], choose(2))
        np.testing.assert_allclose([o.box for o in alone.objects[0]], [o.box for o in res.objects[b]], atol=1e-3)
        assert [o.label for o in alone.objects[0]] == [o.label for o in res.objects[b]]
        for k, obj in enumerate(alone.objects[0]):
            expected = grad_cam(GradCAM, model, layer.module, x[b:b + 1], [obj.target])[0]
            peaks.append(expected.max())
            np.testing.assert_allclose(alone.object_maps[key][0][k].numpy(), expected, atol=1e-5)
        # the same maps in the batch, up to the float rounding of batched kernels (min-max scaled up)
        np.testing.assert_allclose(res.object_maps[key][b].numpy(), alone.object_maps[key][0].numpy(), atol=5e-4)
    assert max(peaks) > 0.5  # real maps (one may be all negative before grad-cam's ReLU: empty)
    with torch.no_grad():
        outputs = model(x)
    # every object matches its own output box, also a box output once per label (grad-cam's target gives 0
    # to all copies but the best-scored, whatever their label)
    assert all(float(o.target(outputs[b])) > 1 for b in range(2) for o in res.objects[b])


@pytest.mark.parametrize("name", list(BUILDERS))
def test_suggested_layer_is_not_overwritten_in_place(name):
    # else its activations are another module's output (grad-cam pairs them with the pre-activation gradient)
    model, size = build(name), BUILDERS[name][0]
    x = images(1, size)
    probe = probe_model(model, x)
    layer = probe.layers[suggest_layers(probe, model)[0]]
    seen = {}
    handle = layer.module.register_forward_hook(lambda m, a, out: seen.update(out=out, version=out._version))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    assert seen["out"]._version == seen["version"], f"{layer.name}'s output was modified in place"


def test_images_of_a_batch_do_not_interact():
    model = build(FRCNN)
    x = images(2, 224, seed=2)
    probe = probe_model(model, x[:1])
    layers = [probe.layers[n] for n in (suggest_layers(probe, model)[0], "backbone.fpn.layer_blocks.0")]
    engine = DetectorEngine(model, layers, ["gradcam", "layercam", "eigencam"])
    counts = [3, 1]  # rounds of backwards where one image has no object left
    both = engine.explain(x, choose(counts))
    for b in range(2):
        alone = engine.explain(x[b:b + 1], choose(counts[b]))
        np.testing.assert_allclose([o.box for o in alone.objects[0]], [o.box for o in both.objects[b]], atol=1e-3)
        for key in both.maps:
            assert both.object_maps[key][b].shape == (counts[b], 224, 224)
            np.testing.assert_allclose(both.maps[key][b].numpy(), alone.maps[key][0].numpy(), atol=1e-4)
            np.testing.assert_allclose(both.object_maps[key][b].numpy(), alone.object_maps[key][0].numpy(), atol=1e-4)
    none = engine.explain(x, choose([2, 0]))  # an image without objects: no maps, an empty sample map
    assert none.object_maps[("gradcam", layers[0].name)][1].shape == (0, 224, 224)
    assert float(none.maps[("gradcam", layers[0].name)][1].abs().max()) == 0


def _cv2_geometry(grid, padded_hw, image_hw, input_hw):
    # the grid resized to the padded tensor, cropped to the image, resized to the input
    full = cv2.resize(np.float32(grid), padded_hw[::-1], interpolation=cv2.INTER_LINEAR)
    return cv2.resize(full[: image_hw[0], : image_hw[1]], input_hw[::-1], interpolation=cv2.INTER_LINEAR)


def test_padding_geometry():
    model = build(FRCNN, min_size=200, max_size=1000)
    x = images(1, (150, 225), seed=3)  # resized to 200x300, padded to 224x320
    geometry = InputGeometry(model)
    with torch.no_grad(), geometry.recording():
        model(x)
    assert geometry.padded_hw == (224, 320) and geometry.image_sizes == [(200, 300)]
    h, w = 7, 10
    rows, cols = geometry.matrices((h, w), (150, 225), 0, torch.device("cpu"))
    for i, j in [(0, 0), (2, 3), (3, 7), (6, 9), (5, 1)]:
        grid = np.zeros((h, w), np.float32)
        grid[i, j] = 1
        got = (rows @ torch.from_numpy(grid) @ cols.T).numpy()
        expected = _cv2_geometry(grid, (224, 320), (200, 300), (150, 225))
        np.testing.assert_allclose(got, expected, atol=1e-6)
        if 0 < i < 6 and 0 < j < 9:  # an inner cell peaks at its centre (32 px per cell, 4/3 resize)
            py, px = np.unravel_index(got.argmax(), got.shape)
            assert abs(py - (i + 0.5) * 24) <= 2 and abs(px - (j + 0.5) * 24) <= 2
            assert np.abs(got - cv2.resize(grid, (225, 150))).max() > 0.1  # not grad-cam's direct resize

    # the engine's maps: at the input's size, placed as the geometry says
    probe = probe_model(model, x)
    assert probe.input_hw == (224, 320) and probe.image_hw == (150, 225)
    layer = probe.layers[suggest_layers(probe, model)[0]]
    res = DetectorEngine(model, [layer], ["gradcam"]).explain(x, choose(2))
    key = ("gradcam", layer.name)
    assert res.maps[key].shape == (1, 150, 225) and res.object_maps[key][0].shape == (2, 150, 225)
    for k, obj in enumerate(res.objects[0]):
        assert 0 <= obj.box[0] <= obj.box[2] <= 225 and 0 <= obj.box[1] <= obj.box[3] <= 150
        cam = GradCAM(model, [layer.module])  # its activations and gradients, our resize
        try:
            cam(x, targets=[obj.target])
            a, g = [t[0].numpy() for t in (cam.activations_and_grads.activations, cam.activations_and_grads.gradients)]
        finally:
            cam.activations_and_grads.release()
        assert a.shape[-2:] == (h, w)
        raw = np.maximum((g.mean(axis=(2, 3))[:, :, None, None] * a).sum(axis=1)[0], 0)
        raw = (raw - raw.min()) / (1e-7 + (raw - raw.min()).max())
        expected = np.maximum(_cv2_geometry(raw, (224, 320), (200, 300), (150, 225)), 0)
        expected = (expected - expected.min()) / (1e-7 + (expected - expected.min()).max())
        np.testing.assert_allclose(res.object_maps[key][0][k].numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("name,layer_name", [(FRCNN, None), ("fcos_resnet50_fpn", "backbone.fpn.layer_blocks.0")])
def test_eigencam_one_map_per_image(name, layer_name, monkeypatch):
    import pytorch_grad_cam.eigen_cam as eigen_cam
    from pytorch_grad_cam.utils import svd_on_activations

    model, size = build(name), BUILDERS[name][0]
    x = images(2, size, seed=4)
    probe = probe_model(model, x[:1])
    layer = probe.layers[layer_name or suggest_layers(probe, model)[0]]
    res = DetectorEngine(model, [layer], ["eigencam"]).explain(x, choose(3))
    key = ("eigencam", layer.name)
    fix = getattr(svd_on_activations, "get_2d_projection_with_sign_correction", None)
    if fix is not None:  # cam_core's sign convention: the largest-magnitude value is positive
        monkeypatch.setattr(eigen_cam, "get_2d_projection", fix)
    for b in range(2):
        maps = res.object_maps[key][b]
        assert maps.shape == (3, size, size)
        for k in range(3):
            assert torch.equal(maps[k], res.maps[key][b])
        assert res.maps[key][b].max() > 0.5
        if fix is not None:
            expected = grad_cam(EigenCAM, model, layer.module, x[b:b + 1], [res.objects[b][0].target])[0]
            np.testing.assert_allclose(res.maps[key][b].numpy(), expected, atol=1e-4)


def test_frozen_model_and_state_restored():
    model = build(FRCNN)
    x = images(1, 224, seed=5)
    probe = probe_model(model, x)
    layer = probe.layers[suggest_layers(probe, model)[0]]
    engine = DetectorEngine(model, [layer], ["gradcam"])
    key = ("gradcam", layer.name)
    reference = engine.explain(x, choose(2)).object_maps[key][0]
    params = list(model.parameters())
    try:
        for p in params:
            p.requires_grad_(False)
            p.grad = None  # grad-cam's backward in other tests filled them
        model.train()
        model.backbone.body.eval()  # a mixed state, to be restored as is
        res = engine.explain(x, choose(2))
        assert model.training and model.roi_heads.training and not model.backbone.body.training
        assert not any(p.requires_grad for p in params) and all(p.grad is None for p in params)
        assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    finally:
        for p in params:
            p.requires_grad_(True)
        model.eval()
    maps = res.object_maps[key][0]
    assert maps.shape == (2, 224, 224) and float(maps.amax()) > 0.5 and float(maps.std()) > 0
    np.testing.assert_allclose(maps.numpy(), reference.numpy(), atol=1e-6)
    assert model(x)[0]["boxes"].requires_grad  # the parameters are trainable again


def test_refused_methods():
    with pytest.raises(CamArgumentError) as err:
        check_detector_methods(["gradcam", "scorecam"])
    assert err.value.param == "methods"
    assert "scorecam" in err.value.message and "gradcam" in err.value.message and "eigencam" in err.value.message
    with pytest.raises(CamArgumentError) as err:
        check_detector_methods(["gradcam"], aug_smooth=True)
    assert err.value.param == "aug_smooth"
    with pytest.raises(CamArgumentError):
        DetectorEngine(build(FRCNN), [], ["fullgrad"])
    check_detector_methods(["gradcam", "eigencam", "layercam"])  # allowed
