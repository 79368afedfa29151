"""The torch maths of the fast methods (cam_core.engine.fastmaps): equal to
grad-cam's classes on the same tensors (with and without eigen_smooth), its
resize equal to cv2's, the eigen methods' sign following the documented rule,
and the engine's fast path running none of grad-cam's numpy code and one
device-to-host copy a batch, smoothed or not."""
import cv2
import numpy as np
import pytest
import torch

import models
from cam_core.engine import CamEngine, probe_model, resolve_layers
from cam_core.engine.fastmaps import KRYLOV_STEPS, RAW_MAPS, LayerGrids, finish, projection, resize, top_eigenvector
from cam_core.engine.methods import METHODS
from cam_core.engine.targets import classifier_targets
from test_equivalence import orientation, photos

FAST = [m for m, spec in METHODS.items() if spec.fast]


def gradcam_maps(method, a, g, size, eigen_smooth=False):
    """grad-cam's own maths on numpy arrays: the class's get_cam_image, then
    compute_cam_per_layer's ReLU and resize and aggregate_multi_layers."""
    from pytorch_grad_cam.utils.image import scale_cam_image

    cam = METHODS[method].cls(torch.nn.Linear(1, 1), [])  # no layers: no hooks, its maths only
    with orientation(method, eigen_smooth):
        raw = np.maximum(cam.get_cam_image(None, None, None, a, g, eigen_smooth), 0)
    return cam.aggregate_multi_layers([scale_cam_image(raw, size[::-1])[:, None]]), raw.reshape(len(raw), -1).max(axis=1)


def ours(method, a, g, size, eigen_smooth=False):
    np.random.seed(0)
    maps, peaks = finish(RAW_MAPS[method](LayerGrids(torch.from_numpy(a), torch.from_numpy(g)), eigen_smooth), size)
    return maps.numpy(), peaks.numpy()


def tolerance(method, eigen_smooth):
    """2e-6, but XGradCAM's eigen_smooth: its weights divide by channel sums
    near 0 here (post-ReLU noise on 12 cells), and the Gram matrix of the
    weighted activations squares their range. Measured: 7.5e-6 from
    grad-cam's map, where the engine's is 5.8e-6 and grad-cam's own float32
    map 1.6e-6 from the same maths in float64. RandomCAM's eigen_smooth too:
    its random weights of both signs nearly cancel (measured 2.2e-6)."""
    return 1e-5 if eigen_smooth and method in ("xgradcam", "randomcam") else 2e-6


def test_the_fast_methods_are_the_fastmaps_functions():
    assert set(FAST) == set(RAW_MAPS)
    assert all(METHODS[m].kind in ("gradient", "activation") for m in FAST)


# (channels, grid) with channels <= cells (the C x C Gram) and channels > cells (the cells x cells one)
SHAPES = [(6, (5, 7)), (40, (3, 4))]
SIZES = [(32, 48), (5, 7), (2, 3), (3, 9)]  # up, equal, down, mixed


@pytest.mark.parametrize("eigen_smooth", [False, True])
@pytest.mark.parametrize("method", FAST)
@pytest.mark.parametrize("channels,grid", SHAPES)
def test_maps_and_peaks_equal_gradcam_maths(method, channels, grid, eigen_smooth):
    rng = np.random.default_rng(1)
    a = np.maximum(rng.normal(size=(3, channels, *grid)), 0).astype(np.float32)  # post-ReLU activations
    g = rng.normal(size=a.shape).astype(np.float32)
    g[0, 0, 0, :2] = 0  # GradCAM++ zeroes its alphas where the gradient is 0
    for size in SIZES:
        np.random.seed(0)
        expected, peaks = gradcam_maps(method, a, g, size, eigen_smooth)
        got, got_peaks = ours(method, a, g, size, eigen_smooth)
        assert got.shape == expected.shape == (3, *size) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=tolerance(method, eigen_smooth))
        np.testing.assert_allclose(got_peaks, peaks, rtol=1e-5)


def test_resize_equals_cv2_up_and_down():
    rng = np.random.default_rng(0)
    for hw, size in [((7, 7), (224, 224)), ((14, 14), (224, 224)), ((3, 5), (96, 97)), ((57, 43), (224, 160)),
                     ((200, 200), (96, 96)), ((192, 192), (96, 96)), ((100, 30), (64, 64)), ((64, 64), (37, 91)),
                     ((13, 29), (13, 29))]:
        m = rng.random((2, *hw)).astype(np.float32)
        expected = np.stack([cv2.resize(i, size[::-1]) for i in m])
        got = resize(torch.from_numpy(m), size).numpy()
        np.testing.assert_allclose(got, expected, atol=2.5e-7, err_msg=f"{hw} -> {size}")


def reference_projection(x):
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    return get_2d_projection(x)


@pytest.mark.parametrize("channels,grid", SHAPES + [(256, (16, 16)), (300, (7, 7))])
def test_projection_has_the_documented_sign(channels, grid):
    """The projection is grad-cam's up to the sign, and the sign is the one
    making the largest-magnitude value positive (grad-cam's sign-corrected
    variant); so negating the input gives the same map, and a second run or
    another batch does too."""
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction

    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, channels, *grid)).astype(np.float32) + rng.random((4, channels, 1, 1)).astype(np.float32)
    p = projection(torch.from_numpy(x)).numpy()
    assert p.dtype == np.float32 and p.shape == (4, *grid)
    scale = np.abs(p).max()
    stock = reference_projection(x)
    for b in range(4):
        same = np.abs(p[b] - stock[b]).max() <= 2e-5 * scale
        flipped = np.abs(p[b] + stock[b]).max() <= 2e-5 * scale
        assert same or flipped
        assert p[b].max() >= -p[b].min()  # the documented rule
    np.testing.assert_allclose(p, get_2d_projection_with_sign_correction(x), atol=2e-5 * scale)
    np.testing.assert_allclose(projection(torch.from_numpy(-x)).numpy(), p, atol=2e-5 * scale)
    assert torch.equal(projection(torch.from_numpy(x)), torch.from_numpy(p))
    np.testing.assert_allclose(projection(torch.from_numpy(x[2:3])).numpy()[0], p[2], atol=2e-5 * scale)


@pytest.mark.parametrize("n,rank", [(23, 4), (KRYLOV_STEPS, KRYLOV_STEPS), (300, 3), (300, 300), (512, 60)])
def test_top_eigenvector_is_eighs_on_full_and_low_rank_gram_matrices(n, rank):
    """The Lanczos eigenvector is float64 eigh's (up to the sign) to float32
    precision: on Gram matrices of full rank (a Krylov space smaller than the
    matrix) and of low rank (the space runs out after rank + 1 steps; FullGrad's
    stack of bias maps, mostly zero channels, is one); a zero matrix gives a
    zero vector, not NaN."""
    rng = np.random.default_rng(5)
    m = rng.normal(size=(3, 2 * n, rank)) @ rng.normal(size=(3, rank, n))
    m[:, :, : n // 4] = 0  # zero channels, as FullGrad's
    m -= m.mean(axis=1, keepdims=True)
    gram = torch.from_numpy(m.transpose(0, 2, 1) @ m)
    v = top_eigenvector(gram.float()).double()
    exact = torch.linalg.eigh(gram)[1][..., -1:]
    err = torch.minimum((v - exact).norm(dim=1), (v + exact).norm(dim=1)).max().item()
    single = torch.linalg.eigh(gram.float())[1][..., -1:].double()  # float32 eigh, for scale
    err_single = torch.minimum((single - exact).norm(dim=1), (single + exact).norm(dim=1)).max().item()
    assert err <= max(1e-5, 2 * err_single), (err, err_single)
    zero = top_eigenvector(torch.zeros(2, n, n))
    assert zero.shape == (2, n, 1) and torch.equal(zero, torch.zeros_like(zero))


def test_projection_zeroes_nans_and_computes_half_precision_in_float32():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 8, 4, 4)).astype(np.float32)
    x[0, 1, 2, 3] = np.nan
    p = projection(torch.from_numpy(x)).numpy()
    assert np.isfinite(p).all()
    np.testing.assert_allclose(np.abs(p), np.abs(reference_projection(x)), atol=1e-5)
    half = torch.from_numpy(np.nan_to_num(x)).half()
    got = projection(half)
    assert got.dtype == torch.float32
    assert torch.equal(got, projection(half.float()))
    grids = LayerGrids(half, half)
    assert grids.a.dtype == grids.g.dtype == grids.ga.dtype == torch.float32


@pytest.mark.parametrize("eigen_smooth", [False, True])
@pytest.mark.parametrize("factory,layer", [(models.deit_distilled, "blocks.11.norm1"), (models.swin, "layers.3.blocks.1.norm1")])
def test_xgradcam_on_layernorm_tokens_is_as_exact_as_gradcam(factory, layer, eigen_smooth):
    """After a LayerNorm a channel's spatial sum, XGradCAM's denominator, can
    be ~1e-4 of its absolute sum: float32 rounding then moves grad-cam's own
    map by ~1e-4 from the same maths in float64 on the same activations. The
    engine must be within 2e-5 of that float64 map, or no further than
    grad-cam's float32 map is (with eigen_smooth too: that noise through a
    projection)."""
    model = factory()
    x = photos(224)
    (info,) = resolve_layers(probe_model(model, x[:1]), model, [layer])
    acts = {}
    handle = info.module.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    try:
        out = model(x)
    finally:
        handle.remove()
    targets = classifier_targets(out.detach(), None)[0]
    (g,) = torch.autograd.grad(sum(t(o) for t, o in zip(targets, out)), [acts["a"]])
    a, g = (info.to_nchw(t, (224, 224)).detach().numpy() for t in (acts["a"], g))
    exact, _ = gradcam_maps("xgradcam", a.astype(np.float64), g.astype(np.float64), (224, 224), eigen_smooth)
    single, _ = gradcam_maps("xgradcam", a, g, (224, 224), eigen_smooth)
    got, _ = ours("xgradcam", a, g, (224, 224), eigen_smooth)
    assert np.abs(got - exact).max() <= max(2e-5, np.abs(single - exact).max())


def raising(name):
    def fail(*args, **kwargs):
        raise AssertionError(f"the fast path called {name}")

    return fail


@pytest.mark.parametrize("flags", [{}, {"eigen_smooth": True}, {"aug_smooth": True}, {"eigen_smooth": True, "aug_smooth": True}])
def test_fast_path_runs_no_gradcam_maths_no_numpy_svd_and_one_host_copy(monkeypatch, flags):
    import pytorch_grad_cam.utils.image as image
    from pytorch_grad_cam.base_cam import BaseCAM

    model = models.resnet18()
    x = photos(64)
    layers = resolve_layers(probe_model(model, x[:1]), model, ["layer3", "layer4"])
    engine = CamEngine(model, layers, FAST, **flags)
    monkeypatch.setattr(np.linalg, "svd", raising("numpy.linalg.svd"))
    monkeypatch.setattr(image, "scale_cam_image", raising("scale_cam_image"))
    monkeypatch.setattr(cv2, "resize", raising("cv2.resize"))
    monkeypatch.setattr(BaseCAM, "get_cam_image", raising("BaseCAM.get_cam_image"))
    for method in FAST:
        cls = METHODS[method].cls
        for attr in ("get_cam_image", "get_cam_weights"):
            if attr in vars(cls):
                monkeypatch.setattr(cls, attr, raising(f"{cls.__name__}.{attr}"))
    # device-to-host copies outside make_targets (which reads the predictions)
    copies, inside = [], [False]
    for attr in ("cpu", "numpy", "item", "tolist", "__bool__", "__float__"):
        real = getattr(torch.Tensor, attr)

        def counted(self, *args, _real=real, _attr=attr, **kwargs):
            if not inside[0]:
                copies.append(_attr)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, attr, counted)

    def make_targets(out):
        inside[0] = True
        try:
            return classifier_targets(out, None)
        finally:
            inside[0] = False

    res = engine.explain(x, make_targets)
    monkeypatch.undo()
    assert copies == ["cpu", "numpy"]  # the peaks, once
    assert list(res.maps) == list(res.peaks) == [(m, n) for m in FAST for n in ("layer3", "layer4")]
    for key, maps in res.maps.items():
        assert isinstance(maps, torch.Tensor) and maps.dtype == torch.float32 and maps.shape == (2, 64, 64)
        assert isinstance(res.peaks[key], np.ndarray) and res.peaks[key].shape == (2,)
        if key[0] != "randomcam":
            assert maps.max() > 0.5 and maps.min() >= 0 and maps.max() <= 1
