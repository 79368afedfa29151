"""grad-cam's eigen_smooth and aug_smooth in the engine (cam_core.engine.smoothing):
its maps equal grad-cam's own classes called with those flags, per
architecture; the smoothing's projection is the engine's (thin, signed); the
six augmented copies share the batch's one pass; and with both flags off the
engine does none of that work.

Projections are compared up to grad-cam's arbitrary sign, as the eigen methods
are (:func:`test_equivalence.orientation`)."""
import numpy as np
import pytest
import torch

import models
from cam_core.engine import CamEngine, probe_model, resolve_layers
from cam_core.engine import explain as explain_module
from cam_core.engine import fastmaps, smoothing
from cam_core.engine.methods import METHODS
from cam_core.engine.targets import classifier_targets, finer_targets, segmenter_targets
from test_equivalence import CASES, as_numpy, atol, orientation, ours, photos, reference

# randomcam first: its weights are the first draw from numpy's seeded generator
FAST = ["randomcam"] + [m for m, spec in METHODS.items() if spec.fast and m != "randomcam"]
OTHERS = ["kpca_cam", "fem", "fullgrad", "shapleycam", "finercam"]
EIGEN = dict(eigen_smooth=True)
AUG = dict(aug_smooth=True)
BOTH = dict(eigen_smooth=True, aug_smooth=True)
FLAGS = {"eigen": EIGEN, "aug": AUG, "both": BOTH}
# on the ViTs (six grad-cam passes per method, the reference's cost) aug_smooth is checked on
# three gradient methods of different weightings, both flags on three; all of them on the CNN
# (the augmentation is one code path for every method: test_augment_and_deaugment_are_gradcams_tta)
ON_VITS = {
    "eigen": FAST,
    "aug": ["gradcam", "gradcamplusplus", "layercam"],
    "both": ["gradcam", "xgradcam", "eigengradcam"],
}


def tolerance(method, flags):
    """The equivalence tests' tolerances, but XGradCAM's eigen_smooth: its
    weights' float32 noise (test_equivalence.atol) goes through a projection.
    Measured on Swin: the engine's map vs grad-cam's up to 2.4e-4 (eigen and
    aug), while on the same activations grad-cam's float32 map is up to
    1.4e-4 from the same maths in float64 and the engine's up to 6.7e-5
    (test_fastmaps.test_xgradcam_on_layernorm_tokens_is_as_exact_as_gradcam)."""
    return 4e-4 if method == "xgradcam" and flags.get("eigen_smooth") else atol(method)


def compare(got, expected, method, what, flags):
    assert got.shape == expected.shape
    if method != "randomcam":  # a map of zeros would make equality vacuous
        assert got.max() > 0.4, f"{what}: map is empty"
    print(f"{what}: max |engine - grad-cam| = {np.abs(got - expected).max():.1e}")
    np.testing.assert_allclose(got, expected, atol=tolerance(method, flags), err_msg=what)


@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("case", CASES)
def test_fast_methods_equal_gradcam_with_smoothing(case, flags):
    """Every fast method, from one engine pass, against grad-cam's class
    called with ``eigen_smooth`` / ``aug_smooth`` and the engine's targets."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    factory, layer, size, _, _ = CASES[case]
    model, x = factory(), photos(size)
    res, (info,) = ours(FAST, model, [layer], x, lambda out: classifier_targets(out, None), **FLAGS[flags])
    targets = [ClassifierOutputTarget(i) for i in res.indices]
    reshape = info.reshape_transform((size, size))
    for method in FAST if case == "resnet18" else ON_VITS[flags]:
        expected = reference(method, model, info.module, x, targets, reshape, **FLAGS[flags])
        compare(as_numpy(res.maps[(method, layer)]), expected, method, f"{method} on {case} ({flags})", FLAGS[flags])


@pytest.mark.parametrize("case", CASES)
def test_other_methods_equal_gradcam_with_eigen_smooth(case):
    """grad-cam's code for the other methods, fed the engine's projection."""
    factory, layer, size, _, _ = CASES[case]
    model, x = factory(), photos(size)
    methods = [m for m in OTHERS if case == "resnet18" or m != "shapleycam"]  # see test_shapleycam_on_token_layers
    res, (info,) = ours(methods, model, [layer], x, lambda out: classifier_targets(out, None), **EIGEN)
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    targets = [ClassifierOutputTarget(i) for i in res.indices]
    for method in methods:
        reshape = None if method == "fullgrad" else info.reshape_transform((size, size))
        expected = reference(method, model, info.module, x, targets, reshape, **EIGEN)
        key = (method, None if method == "fullgrad" else layer)
        compare(as_numpy(res.maps[key]), expected, method, f"{method} on {case} (eigen)", EIGEN)


def augmented(run, x, targets, mirror=lambda ts: ts):
    """grad-cam's ``forward_augmentation_smoothing`` written out, so that the
    flipped copies can be given their own targets: ``run(x_aug, targets)``
    gives a copy's final maps; ``mirror(targets)`` the flipped copies' targets."""
    from pytorch_grad_cam import GradCAM

    probe = torch.arange(2.0).reshape(1, 1, 1, 2)
    cams = []
    for transform in GradCAM(torch.nn.Linear(1, 1), []).tta_transforms:
        flipped = not torch.equal(transform.deaugment_mask(probe), probe)
        cam = run(transform.augment_image(x), mirror(targets) if flipped else targets)
        cams.append(transform.deaugment_mask(torch.from_numpy(cam[:, None]))[:, 0].numpy())
    return np.mean(np.float32(cams), axis=0)


@pytest.mark.parametrize("flags", ["aug", "both"])
def test_other_methods_equal_gradcam_with_aug_smooth(flags):
    """FinerCAM has no aug_smooth in grad-cam: its reference is grad-cam's
    loop, every copy given the targets FinerCAM builds for the plain image."""
    from pytorch_grad_cam import FinerCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x = models.resnet18(), photos(96)
    res, (info,) = ours(OTHERS, model, ["layer3"], x, lambda out: classifier_targets(out, None), **FLAGS[flags])
    targets = [ClassifierOutputTarget(i) for i in res.indices]
    eigen = flags == "both"
    for method in OTHERS[:-1]:
        expected = reference(method, model, info.module, x, targets, **FLAGS[flags])
        key = (method, None if method == "fullgrad" else "layer3")
        compare(as_numpy(res.maps[key]), expected, method, f"{method} on resnet18 ({flags})", FLAGS[flags])
    rivals = finer_targets(model(x), res.indices)
    with FinerCAM(model, [info.module]) as cam, orientation("finercam", eigen):
        expected = augmented(lambda xa, ts: cam(xa, targets=ts, eigen_smooth=eigen), x, rivals)
    compare(as_numpy(res.maps[("finercam", "layer3")]), expected, "finercam", f"finercam on resnet18 ({flags})", FLAGS[flags])


@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_perturbation_methods_equal_gradcam_with_both(method):
    factory, layer = CASES["resnet18"][3], CASES["resnet18"][4]
    model, x = factory(), photos(64)
    res, (info,) = ours(method, model, [layer], x, lambda out: classifier_targets(out, None), **BOTH)
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    targets = [ClassifierOutputTarget(i) for i in res.indices]
    expected = reference(method, model, info.module, x, targets, **BOTH)
    compare(as_numpy(res.maps[(method, layer)]), expected, method, f"{method} on resnet18 (both)", BOTH)


SEGMENT = ["gradcam", "hirescam", "gradcamplusplus", "layercam", "fullgrad"]


@pytest.mark.parametrize("flags", FLAGS)
def test_segmenter_with_smoothing(flags):
    """Against grad-cam, with one deliberate difference under aug_smooth: the
    flipped copies' region is flipped too (grad-cam's loop, given mirrored
    masks), so every copy explains the same pixels of the image."""
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    model, x, layer = models.deeplab(), photos(64), "backbone.16"
    region = np.zeros((64, 64), bool)
    region[:, :27] = True  # not symmetric: a flipped copy has another region
    res, _ = ours(SEGMENT, model, [layer], x, lambda out: segmenter_targets(out, [5, 7], [region, region], 0), **FLAGS[flags])
    assert res.indices == [5, 7]
    wrapped = models.OutWrapper(model)
    module = dict(wrapped.named_modules())["model." + layer]
    targets = [SemanticSegmentationTarget(c, region.astype(np.float32)) for c in (5, 7)]
    mirrored = [SemanticSegmentationTarget(c, region[:, ::-1].astype(np.float32)) for c in (5, 7)]
    eigen = FLAGS[flags].get("eigen_smooth", False)
    for method in SEGMENT:
        if "aug_smooth" in FLAGS[flags]:
            expected = augmented(lambda xa, ts: reference(method, wrapped, module, xa, ts, eigen_smooth=eigen),
                                 x, targets, lambda ts: mirrored)
            if method == "gradcam" and flags == "aug":  # grad-cam's own aug_smooth: unflipped masks, other maps
                stock = reference(method, wrapped, module, x, targets, **FLAGS[flags])
                assert np.abs(stock - expected).max() > 0.05
        else:
            expected = reference(method, wrapped, module, x, targets, **FLAGS[flags])
        key = (method, None if method == "fullgrad" else layer)
        compare(as_numpy(res.maps[key]), expected, method, f"{method} on deeplab ({flags})", FLAGS[flags])


def test_augment_and_deaugment_are_gradcams_tta():
    from pytorch_grad_cam import GradCAM

    x = photos(32)
    copies = smoothing.augment(x)
    transforms = list(GradCAM(torch.nn.Linear(1, 1), []).tta_transforms)
    assert copies.shape == (6 * 2, 3, 32, 32) and len(transforms) == smoothing.COPIES
    maps = torch.rand(12, 32, 32)
    mean = []
    for k, t in enumerate(transforms):
        assert torch.equal(copies[2 * k : 2 * k + 2], t.augment_image(x))
        mean.append(t.deaugment_mask(maps[2 * k : 2 * k + 2, None])[:, 0].numpy())
    assert torch.equal(smoothing.identity_rows(copies, 2), x)
    np.testing.assert_allclose(smoothing.deaugment(maps, 2).numpy(), np.mean(np.float32(mean), axis=0), atol=1e-7)


def test_aug_smooth_keeps_the_plain_images_indices_scores_and_peaks():
    model, x = models.resnet18(), photos(96)
    methods = ["gradcam", "eigencam", "fem", "fullgrad"]
    plain, _ = ours(methods, model, ["layer3"], x, lambda out: classifier_targets(out, None))
    smooth, _ = ours(methods, model, ["layer3"], x, lambda out: classifier_targets(out, None), **AUG)
    assert smooth.indices == plain.indices and len(smooth.targets) == 2
    np.testing.assert_allclose(smooth.scores, plain.scores, rtol=1e-5)
    np.testing.assert_allclose(smooth.confidences, plain.confidences, rtol=1e-5)
    assert list(smooth.peaks) == list(plain.peaks) == list(smooth.maps)
    for key in plain.peaks:
        assert smooth.peaks[key].shape == (2,) and smooth.maps[key].shape == (2, 96, 96)
        np.testing.assert_allclose(smooth.peaks[key], plain.peaks[key], rtol=1e-4)
        assert not torch.allclose(smooth.maps[key], plain.maps[key], atol=1e-3)


def test_eigen_smooth_flag_of_each_method_says_whether_its_maps_change():
    model, x = models.resnet18(), photos(64)
    methods = [m for m in METHODS if METHODS[m].kind != "perturb"]
    make = lambda out: classifier_targets(out, None)  # noqa: E731
    np.random.seed(0)
    plain, _ = ours(methods, model, ["layer3"], x, make)
    smooth, _ = ours(methods, model, ["layer3"], x, make, **EIGEN)
    for key, maps in plain.maps.items():
        differ = np.abs(as_numpy(maps) - as_numpy(smooth.maps[key])).max() > 1e-3
        assert differ == METHODS[key[0]].eigen_smooth, key


def raising(name):
    def fail(*args, **kwargs):
        raise AssertionError(f"called {name}")

    return fail


def test_eigen_smooth_projects_with_the_engine_and_patches_nothing(monkeypatch):
    """No numpy SVD anywhere (grad-cam's get_2d_projection), and grad-cam's
    modules still hold their own function afterwards."""
    import pytorch_grad_cam.base_cam as base_cam
    import pytorch_grad_cam.fullgrad_cam as fullgrad_cam

    before = base_cam.get_2d_projection, fullgrad_cam.get_2d_projection
    model, x = models.resnet18(), photos(64)
    methods = [m for m in METHODS if m not in ("kpca_cam", "fem")]  # they do not project
    monkeypatch.setattr(np.linalg, "svd", raising("numpy.linalg.svd"))
    res, _ = ours(methods, model, ["layer3"], x, lambda out: classifier_targets(out, None), **EIGEN)
    assert all(m.max() > 0.5 for k, m in res.maps.items() if k[0] != "randomcam")
    assert (base_cam.get_2d_projection, fullgrad_cam.get_2d_projection) == before


def test_no_smoothing_work_when_the_flags_are_off(monkeypatch):
    for name in ("augment", "deaugment", "identity_rows", "replicate_targets"):
        monkeypatch.setattr(explain_module, name, raising(name))
    monkeypatch.setattr(smoothing, "_rebound", raising("_rebound"))
    monkeypatch.setattr(fastmaps, "projection", raising("projection"))
    model, x = models.resnet18(), photos(64)
    methods = [m for m in METHODS if METHODS[m].eigen_smooth and METHODS[m].kind != "perturb"]
    layers = resolve_layers(probe_model(model, x[:1]), model, ["layer4"])
    engine = CamEngine(model, layers, methods)
    assert not engine.eigen_smooth and not engine.aug_smooth
    res = engine.explain(x, lambda out: classifier_targets(out, None))
    assert len(res.maps) == len(methods)
