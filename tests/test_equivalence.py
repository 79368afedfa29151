"""The engine's maps equal grad-cam's own classes' maps, per method, for a CNN,
a DeiT-distilled ViT, a Swin and a segmentation model.

EigenCAM and EigenGradCAM (and every method with ``eigen_smooth``:
tests/test_smoothing.py) are compared with grad-cam's own classes using its
sign-corrected projection (:func:`orientation`): the engine's documented sign
rule, where grad-cam's default keeps LAPACK's arbitrary sign."""
import contextlib
from unittest import mock

import numpy as np
import pytest
import torch

import models
from cam_core.engine import CamEngine
from cam_core.engine import probe_model, resolve_layers
from cam_core.engine.methods import METHODS
from cam_core.engine.targets import classifier_targets, segmenter_targets

CHEAP = [m for m, spec in METHODS.items() if spec.kind != "perturb"]
PERTURB = [m for m, spec in METHODS.items() if spec.kind == "perturb"]
EIGEN = ["eigencam", "eigengradcam"]
# every grad-cam module calling get_2d_projection (eigen methods, eigen_smooth)
PROJECTING = ["eigen_cam", "eigen_grad_cam", "base_cam", "hirescam", "grad_cam_elementwise", "layer_cam", "fullgrad_cam"]


@contextlib.contextmanager
def orientation(method, eigen_smooth=False):
    """Within it, grad-cam's eigen methods (and, with ``eigen_smooth``, every
    method) use grad-cam's own sign-corrected projection (Seg-Eigen-CAM's
    rule, which the engine documents) instead of LAPACK's arbitrary sign;
    their maths is otherwise the same function."""
    if method not in EIGEN and not eigen_smooth:
        yield
        return
    import importlib

    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction as corrected

    with contextlib.ExitStack() as stack:
        for name in PROJECTING:
            module = importlib.import_module(f"pytorch_grad_cam.{name}")
            stack.enter_context(mock.patch.object(module, "get_2d_projection", corrected))
        yield


# the same checks on every device: CUDA ones are skipped (never passed) on a machine without it
# (benchmarks/device_check.py runs them where there is one)
DEVICES = [pytest.param("cpu", id="cpu"),
           pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(
               not torch.cuda.is_available(), reason="no CUDA device on this machine"))]


@pytest.fixture
def exact_cuda():
    """CUDA matmuls and convolutions in full float32 (TF32 off) while a test runs: grad-cam's maps
    and the engine's are compared at float32's tolerance."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def atol(method, device="cpu"):
    """2e-5, but XGradCAM divides by each channel's spatial sum, ~1e-4 of its
    absolute sum after a LayerNorm: there float32 rounding alone moves
    grad-cam's own map by up to 1.1e-4 from the same maths in float64 (the
    engine's stays within 2e-5 of the float64 one: test_fastmaps). On CUDA,
    reductions run in another order on both sides: 1e-4 at least."""
    tol = 2e-4 if method == "xgradcam" else 2e-5
    return tol if device == "cpu" else max(tol, 1e-4)


def as_numpy(maps, device="cpu"):
    """The engine's (B, H, W) maps: float32 tensors on its device, as numpy."""
    assert isinstance(maps, torch.Tensor) and maps.dtype == torch.float32
    assert maps.device == torch.device(device)
    return maps.cpu().numpy()


def photos(size):
    """Two real photographs as a normalised (2, 3, size, size) batch."""
    from skimage import data
    from torchvision.transforms import functional as F
    from PIL import Image

    imgs = [Image.fromarray(data.astronaut()), Image.fromarray(data.coffee())]
    x = torch.stack([F.to_tensor(F.center_crop(F.resize(i, size), size)) for i in imgs])
    return F.normalize(x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def reference(method, model, module, x, targets, reshape=None, **flags):
    """grad-cam's own class on the same input (``flags``: its call's
    ``eigen_smooth`` / ``aug_smooth``). ScoreCAM and AblationCAM are called
    image by image, as the engine does: grad-cam's own result for an image
    shifts by ~1e-4 with the other images of its batch."""
    if method in PERTURB and len(x) > 1:
        return np.concatenate(
            [reference(method, model, module, x[b : b + 1], targets[b : b + 1], reshape, **flags) for b in range(len(x))]
        )
    np.random.seed(0)
    with orientation(method, flags.get("eigen_smooth", False)):
        return _reference(method, model, module, x, targets, reshape, flags)


def _reference(method, model, module, x, targets, reshape, flags):
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.ablation_layer import AblationLayerVit

    cls = METHODS[method].cls
    if method == "finercam":
        cam = cls(model, [module], reshape_transform=reshape)
        out = cam(x, targets=None, **flags)  # FinerCAM builds its own targets from the prediction
        cam.base_cam.activations_and_grads.release()
        return out
    kwargs = {}
    if method == "ablationcam" and reshape is not None:
        kwargs["ablation_layer"] = AblationLayerVit()
    with cls(model, [module], reshape_transform=reshape, **kwargs) as cam:
        if method in ("scorecam", "ablationcam"):
            cam.batch_size = 16
        return cam(x, targets=targets, **flags)


def ours(method, model, layer_names, x, make_targets, device="cpu", **flags):
    """The engine's maps for ``method`` (or a list of methods); ``flags``:
    its ``eigen_smooth`` / ``aug_smooth``."""
    probe = probe_model(model, x[:1])
    layers = resolve_layers(probe, model, layer_names)
    methods = [method] if isinstance(method, str) else method
    engine = CamEngine(model, layers, methods, device=device, batch_size=16, **flags)
    np.random.seed(0)
    res = engine.explain(x, make_targets)
    engine.close()
    return res, layers


CASES = {
    # name: (model factory, layer, input size, slim factory for perturbation methods, its layer)
    "resnet18": (models.resnet18, "layer3", 96, models.resnet18, "layer1"),
    "deit_distilled": (models.deit_distilled, "blocks.11.norm1", 224, models.slim_deit, "blocks.1.norm1"),
    "swin": (models.swin, "layers.3.blocks.1.norm1", 224, models.slim_swin, "layers.2.blocks.0.norm1"),
}


# grad-cam's ShapleyCAM cannot take token layers: see test_shapleycam_on_token_layers
PAIRS = [(c, m) for c in CASES for m in CHEAP + PERTURB if not (m == "shapleycam" and c != "resnet18")]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case,method", PAIRS)
def test_classifier_maps_equal_gradcam(case, method, device, exact_cuda):
    factory, layer, size, slim, slim_layer = CASES[case]
    if method in PERTURB:
        factory, layer = slim, slim_layer
    model = factory().to(device)
    x = photos(size).to(device)
    res, (info,) = ours(method, model, [layer], x, lambda out: classifier_targets(out, None), device=device)
    key = (method, None if method == "fullgrad" else layer)
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    targets = [ClassifierOutputTarget(i) for i in res.indices]
    reshape = None if method == "fullgrad" else info.reshape_transform((size, size))
    expected = reference(method, model, info.module, x, targets, reshape)
    got = as_numpy(res.maps[key], device)
    assert got.shape == expected.shape == (2, size, size)
    if method != "randomcam":  # a map of zeros would make equality vacuous
        assert got.max() > 0.5, f"{method} on {case}: map is empty"
    np.testing.assert_allclose(got, expected, atol=atol(method, device))


SEG_METHODS = [m for m in METHODS if m != "finercam"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", SEG_METHODS)
def test_segmentation_maps_equal_gradcam(method, device, exact_cuda):
    model = models.deeplab().to(device)
    # deep layers of a random-weight deeplab carry almost no signal (~1e-7)
    # for these two; earlier layers give them real maps to compare
    layer = {"scorecam": "backbone.3", "ablationcam": "backbone.3", "kpca_cam": "backbone.4"}.get(method, "backbone.16")
    x = photos(96).to(device)
    # a random-weight segmenter predicts one class everywhere: explain fixed
    # classes over a region (the left half), so the region really matters
    region = np.zeros((96, 96), bool)
    region[:, :48] = True
    res, (info,) = ours(method, model, [layer], x, lambda out: segmenter_targets(out, [5, 7], [region, region], 0),
                        device=device)
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    wrapped = models.OutWrapper(model)
    targets = [SemanticSegmentationTarget(c, region.astype(np.float32)) for c in (5, 7)]
    module = dict(wrapped.named_modules())["model." + layer]
    expected = reference(method, wrapped, module, x, targets)
    got = as_numpy(res.maps[(method, None if method == "fullgrad" else layer)], device)
    assert got.shape == expected.shape == (2, 96, 96)
    if method != "randomcam":
        assert got.max() > 0.5
    np.testing.assert_allclose(got, expected, atol=atol(method, device))


def test_finercam_is_refused_for_segmenters(dataset, image_dir):
    import fiftyone as fo
    import cam_core

    dataset.add_sample(fo.Sample(filepath=image_dir["astronaut"]))
    with pytest.raises(ValueError, match="finercam"):
        cam_core.compute_cams(dataset, models.deeplab(), methods=["finercam"], transforms=_small())


def _small():
    from torchvision import transforms as T

    return T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()])


@pytest.mark.parametrize("factory,layer", [(models.deit_distilled, "blocks.11.norm1"), (models.swin, "layers.3.blocks.1.norm1")])
def test_shapleycam_on_token_layers(factory, layer):
    """grad-cam's ShapleyCAM multiplies its weights with the raw (B, N, C) or
    (B, H, W, C) activations and fails on ViT and Swin layers; the engine
    applies the same weights (grad-cam's get_cam_weights) to the grid, and
    needs attention's math kernel for the double backward on CPU."""
    model = factory()
    x = photos(224)
    res, _ = ours("shapleycam", model, [layer], x, lambda out: classifier_targets(out, None))
    cam = as_numpy(res.maps[("shapleycam", layer)])
    assert cam.shape == (2, 224, 224)
    assert np.isfinite(cam).all() and cam.max() > 0.5


# Reduced precision (cam_core.engine.precision) against grad-cam in fp32: the largest and the mean
# absolute difference between maps in [0, 1]. Measured on these cases: bf16 at most 0.025 / 0.0045,
# fp16 at most 0.011 / 0.0015 (the tolerances leave about 2x). XGradCAM on a norm layer is refused
# in reduced precision (tests/test_precision.py); the methods with passes of their own run in fp32.
PRECISION_TOLERANCE = {"bf16": (0.05, 0.01), "fp16": (0.025, 0.004)}
PRECISION_METHODS = [m for m, spec in METHODS.items() if spec.fast and m != "randomcam"]


def fp16_unsupported():
    """Why this CPU cannot run fp16 autocast, or None (torch 2.14 can: slowly)."""
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.nn.Conv2d(3, 2, 1)(torch.ones(1, 3, 2, 2))
    except Exception as e:  # an older torch, or a CPU without fp16 kernels
        return f"fp16 autocast fails on this CPU: {e}"
    return None


@pytest.mark.parametrize("precision", list(PRECISION_TOLERANCE))
@pytest.mark.parametrize("case", list(CASES))
def test_reduced_precision_maps_are_within_tolerance_of_gradcam_fp32(case, precision):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if precision == "fp16" and fp16_unsupported():
        pytest.skip(fp16_unsupported())
    factory, layer, size, *_ = CASES[case]
    model, x = factory(), photos(size)
    methods = [m for m in PRECISION_METHODS if not (m == "xgradcam" and layer.endswith("norm1"))]
    res, (info,) = ours(methods, model, [layer], x, lambda out: classifier_targets(out, None), precision=precision)
    targets = [ClassifierOutputTarget(i) for i in res.indices]
    worst, mean = PRECISION_TOLERANCE[precision]
    for method in methods:
        expected = reference(method, model, info.module, x, targets, info.reshape_transform((size, size)))
        got = as_numpy(res.maps[(method, layer)])
        assert got.max() > 0.5, f"{method} on {case} ({precision}): map is empty"
        diff = np.abs(got - expected)
        assert diff.max() <= worst and diff.mean() <= mean, (
            f"{method} on {case} ({precision}): max {diff.max():.4f} (tolerance {worst}), "
            f"mean {diff.mean():.5f} (tolerance {mean})")
