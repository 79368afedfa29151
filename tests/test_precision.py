"""Mixed precision (cam_core.engine.precision): its checks, fp16's loss
scaling, a detector's maps in bf16 and fp16 against grad-cam in fp32, and the
precision recorded on a run (a continuation in another precision is refused).
The classifiers' tolerances against grad-cam: tests/test_equivalence.py."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import cam_core
import models
from cam_core.engine.precision import INITIAL_SCALE, Gradients, check_precision
from models import PlantedDetector, planted_scene
from test_equivalence import fp16_unsupported

# a detector's per-object maps in reduced precision against grad-cam's in fp32 (maps in [0, 1]):
# measured at most 0.014 / 0.0015 (bf16) and 0.0015 / 0.0002 (fp16) on these scenes
DETECTOR_TOLERANCE = {"bf16": (0.03, 0.004), "fp16": (0.005, 0.001)}


def needs_fp16():
    reason = fp16_unsupported()
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("value", ["fp64", "half", None, 16])
def test_an_unknown_precision_is_refused_naming_the_allowed(value):
    with pytest.raises(cam_core.CamArgumentError, match="precision must be one of fp32, bf16, fp16") as e:
        check_precision(value, "cpu")
    assert e.value.param == "precision"


def test_xgradcam_on_a_norm_layer_is_refused_in_reduced_precision(dataset, image_dir):
    import fiftyone as fo

    dataset.add_sample(fo.Sample(filepath=image_dir["astronaut"]))
    model = models.deit_tiny()
    with pytest.raises(cam_core.CamArgumentError, match="xgradcam divides by each channel's spatial sum") as e:
        cam_core.checks.check_compute_args(dataset, model, methods=["gradcam", "xgradcam"], layers="blocks.11.norm1",
                                    precision="bf16")
    assert e.value.param == "precision" and "blocks.11.norm1" in e.value.message
    for precision, methods in (("fp32", ["xgradcam"]), ("bf16", ["gradcam", "layercam"])):
        plan = cam_core.checks.check_compute_args(dataset, model, methods=methods, layers="blocks.11.norm1", precision=precision)
        assert plan.precision == precision


class Tiny(nn.Module):
    """A hooked layer whose gradients are ``gain`` times the product of two small weights."""

    def __init__(self, weight):
        super().__init__()
        self.layer = nn.Linear(8, 8)
        self.a, self.b = nn.Linear(8, 8, bias=False), nn.Linear(8, 1, bias=False)
        with torch.no_grad():
            self.a.weight.fill_(weight)
            self.b.weight.fill_(weight)

    def forward(self, x):
        return self.b(self.a(self.layer(x)))


def _grads(model, precision, gradients):
    acts = {}
    model.layer.register_forward_hook(lambda m, a, out: acts.update(out=out))
    x = torch.ones(2, 8)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
    with torch.autocast("cpu", dtype=dtype, enabled=precision != "fp32"):
        loss = model(x).float().sum()
    return gradients(loss, [acts["out"]])[0]


def test_fp16_loss_scaling_recovers_gradients_that_underflow():
    needs_fp16()
    model = Tiny(3e-5)  # gradients of 8 * 9e-10: under fp16's smallest subnormal (6e-8)
    exact = _grads(model, "fp32", Gradients("fp32"))
    unscaled = _grads(model, "fp16", lambda loss, inputs: torch.autograd.grad(loss, inputs))
    scaled = _grads(model, "fp16", Gradients("fp16"))
    assert float(exact.abs().min()) > 0
    assert float(unscaled.abs().max()) == 0  # the underflow this fixes
    assert scaled.dtype == torch.float32
    np.testing.assert_allclose(scaled.numpy(), exact.numpy(), rtol=2e-2)


def test_fp16_halves_its_scale_when_a_scaled_gradient_overflows():
    needs_fp16()
    model = Tiny(3.0)  # gradients of 8 * 9 = 72: times the first scale (2**15) beyond fp16's 65504
    exact = _grads(model, "fp32", Gradients("fp32"))
    gradients = Gradients("fp16")
    got = _grads(model, "fp16", gradients)
    assert gradients.scale < INITIAL_SCALE and gradients.scale * 72 <= 65504
    np.testing.assert_allclose(got.numpy(), exact.numpy(), rtol=1e-2)


def test_fp16_says_what_to_do_when_the_forward_itself_overflows():
    needs_fp16()
    model = Tiny(1e4)  # the forward's values overflow fp16: no scale helps
    with pytest.raises(FloatingPointError, match="use precision='bf16' or 'fp32'"):
        _grads(model, "fp16", Gradients("fp16"))


def _scenes(tmp_path, n=2):
    model = PlantedDetector()
    return model, torch.stack([model.transforms(Image.open(planted_scene(str(tmp_path / f"s{i}.png"), marked=i % 2 == 0,
                                                                        seed=i))) for i in range(n)])


@pytest.mark.parametrize("precision", list(DETECTOR_TOLERANCE))
def test_detector_maps_in_reduced_precision_are_within_tolerance_of_gradcam_fp32(tmp_path, precision):
    from pytorch_grad_cam import GradCAM

    from cam_core.engine.detection import predicted_objects
    from cam_core.engine.detector import DetectorEngine
    from cam_core.engine.layers import probe_model
    from test_detector_engine import grad_cam

    if precision == "fp16":
        needs_fp16()
    model, x = _scenes(tmp_path)
    layer = probe_model(model, x[:1]).layers["features"]
    engine = DetectorEngine(model, [layer], ["gradcam", "hirescam"], precision=precision)
    res = engine.explain(x, lambda outs: [predicted_objects(o, 0.0, 2) for o in outs])
    worst, mean = DETECTOR_TOLERANCE[precision]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(2):
            expected = grad_cam(GradCAM, model, layer.module, x, [res.objects[b][k].target for b in range(2)])
            got = torch.stack([res.object_maps[("gradcam", "features")][b][k] for b in range(2)]).numpy()
            assert got.dtype == np.float32 and got.max() > 0.5
            diff = np.abs(got - expected)
            assert diff.max() <= worst and diff.mean() <= mean, f"object {k}: max {diff.max():.4f}, mean {diff.mean():.5f}"


def test_precision_is_recorded_and_a_continuation_in_another_is_refused(dataset, tmp_path):
    import fiftyone as fo

    dataset.add_samples([fo.Sample(filepath=planted_scene(str(tmp_path / f"s{i}.png"), marked=True, seed=i))
                         for i in range(3)])
    kw = dict(methods="gradcam", score_threshold=0.0, num_workers=0, device="cpu", storage="inline")
    cam_core.compute_cams(dataset.limit(2), PlantedDetector(), precision="bf16", **kw)
    assert dataset.get_run_info("cam").config.precision == "bf16"
    with pytest.raises(cam_core.CamArgumentError, match="was computed with precision='bf16'") as e:
        cam_core.compute_cams(dataset, PlantedDetector(), skip_existing=True, **kw)  # fp32, the default
    assert e.value.param == "precision"
    res = cam_core.compute_cams(dataset, PlantedDetector(), skip_existing=True, precision="bf16", **kw)
    assert res.num_samples == 3
