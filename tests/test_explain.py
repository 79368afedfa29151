"""cam_core.explain: one image's maps in memory, against the maps compute_cams
stores for the same target, against grad-cam's own, and its refusals.

A private mongod (conftest), real photographs written as files, ResNet-18
with random weights (64 px inputs: a centre crop of each photo).
"""
import gc

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T

import fiftyone as fo
import cam_core
from cam_core.compute.explanation import resized
from cam_core.media.mapfiles import load_map
from cam_core.models import cache

CLASSES = ["astronaut", "cat", "coffee", "rocket"]
LAYERS = ["layer3", "layer4"]
METHODS = ["gradcam", "gradcamplusplus", "eigencam"]
EIGHT_BITS = 0.5 / 254 + 1e-5  # a stored map is round(254 v) / 254; the batch's sums differ by ~1e-7


def register(name):
    model = tiny()
    cam_core.register_model(name, model.module, transforms=model.transforms, classes=model.classes)


def tiny(crop=True):
    torch.manual_seed(0)
    module = torchvision.models.resnet18(weights=None, num_classes=len(CLASSES)).eval()
    steps = [T.Resize(64), T.CenterCrop(64)] if crop else []
    return cam_core.CamModel(module, T.Compose(steps + [T.ToTensor()]), list(CLASSES), name="tiny")


@pytest.fixture
def photos(dataset, image_dir):
    dataset.add_samples([fo.Sample(filepath=image_dir[n], ground_truth=fo.Classification(label=c))
                         for n, c in zip(["astronaut", "chelsea", "coffee", "rocket"], CLASSES)])
    return dataset


def _stored(sample, field):
    """A stored map as floats, at the model's scale (its PNG's size)."""
    return load_map(sample[field]).astype(np.float32)


@pytest.mark.parametrize("target", ["prediction", "class:coffee", "field:ground_truth"])
def test_explain_equals_the_stored_map_up_to_its_8_bits(photos, target):
    model = tiny()
    cam_core.compute_cams(photos, model, layers=LAYERS, methods=METHODS, target=target, batch_size=4)
    for sample in photos:
        exp = cam_core.explain(sample, model, layers=LAYERS, methods=METHODS, target=target)
        heat = sample["cam_gradcam_layer4"]
        assert (exp.target_label, exp.target_index) == (heat.target_label, heat.target_index)
        assert exp.target_confidence == pytest.approx(heat.target_confidence, abs=1e-5)
        w, h = Image.open(sample.filepath).size
        assert exp.image_size == (w, h)
        for (method, layer), field in [((m, l), f"cam_{m}_{l}") for m in METHODS for l in LAYERS]:
            stored = _stored(sample, field)
            ours = exp[(method, layer)]
            assert ours.shape == (h, w) and ours.dtype == np.float32
            assert 0.0 <= ours.min() and ours.max() <= 1.0
            # at the stored map's own scale, and at the image's: the same map up to 8 bits
            assert np.abs(exp.resized((method, layer), stored.shape[::-1]) - stored).max() <= EIGHT_BITS
            assert np.abs(ours - resized(torch.from_numpy(stored), (w, h))).max() <= EIGHT_BITS
            for score in ("peak", "centroid_x", "spread", "entropy"):
                assert exp.scores[(method, layer)][score] == pytest.approx(heat_score(sample, field, score), abs=2e-3)


def heat_score(sample, field, score):
    return sample[field][score]


def test_explain_is_zero_where_the_model_did_not_see(image_dir):
    exp = cam_core.explain(image_dir["chelsea"], tiny(), layers=["layer3"], methods=["gradcam"])
    cam = exp[("gradcam", "layer3")]  # 451x300: the centre crop is the middle 300x300
    assert cam.shape == (300, 451)
    assert cam[:, :70].max() == 0 and cam[:, -70:].max() == 0
    assert cam[:, 80:-80].max() > 0.95  # (the maximum, interpolated onto the photo's pixels)


def test_without_resizing_explain_is_grad_cams_own_map(image_dir):
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = tiny(crop=False)
    img = Image.open(image_dir["astronaut"]).convert("RGB").resize((64, 64))
    exp = cam_core.explain(np.asarray(img), model, layers=["layer4"], methods=["gradcam", "gradcamplusplus"], target="cat")
    x = T.ToTensor()(img)[None]
    for name, cls in (("gradcam", GradCAM), ("gradcamplusplus", GradCAMPlusPlus)):
        module = tiny(crop=False).module  # the same random weights
        with cls(model=module, target_layers=[module.layer4]) as cam:
            theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(1)])[0]
        assert np.abs(exp[(name, "layer4")] - theirs).max() < 1e-4, name


def test_the_model_is_left_as_found(image_dir):
    model = tiny()
    module = model.module.train()
    module.layer1.requires_grad_(False)
    calls = []
    handle = module.layer2.register_forward_hook(lambda *a: calls.append(1))
    before = ([m.training for m in module.modules()], [p.requires_grad for p in module.parameters()],
              {k: v.clone() for k, v in module.state_dict().items()})
    cam_core.explain(image_dir["coffee"], model, layers=LAYERS, methods=["gradcam", "eigencam"])
    after = ([m.training for m in module.modules()], [p.requires_grad for p in module.parameters()], module.state_dict())
    assert before[:2] == after[:2]
    assert all(torch.equal(before[2][k], after[2][k]) for k in before[2])  # BatchNorm statistics untouched
    assert all(p.grad is None for p in module.parameters())
    assert calls  # the user's own hook stayed, and ran
    handle.remove()


def test_a_model_by_name_is_loaded_and_probed_once(image_dir, monkeypatch):
    probes = []
    real = cache.describe_model
    monkeypatch.setattr(cache, "describe_model", lambda *a, **k: probes.append(1) or real(*a, **k))
    cache.clear()
    register("tiny-explain")
    for _ in range(3):
        cam_core.explain(image_dir["rocket"], "tiny-explain", layers=["layer4"])
    assert len(probes) == 1
    # the cache is bounded: other names push the oldest out
    for i in range(cache.NAMED_CACHE_SIZE):
        register(f"tiny-explain-{i}")
        cam_core.explain(image_dir["rocket"], f"tiny-explain-{i}", layers=["layer4"])
    cam_core.explain(image_dir["rocket"], "tiny-explain", layers=["layer4"])
    assert len(probes) == 2 + cache.NAMED_CACHE_SIZE


def test_a_model_object_is_probed_once_and_not_kept_alive(image_dir, monkeypatch):
    probes = []
    real = cache.describe_model
    monkeypatch.setattr(cache, "describe_model", lambda *a, **k: probes.append(1) or real(*a, **k))
    cache.clear()
    model = tiny()
    first = cam_core.explain(image_dir["rocket"], model, layers=["layer4"])
    second = cam_core.explain(image_dir["rocket"], model, layers=["layer4"])
    assert len(probes) == 1
    assert np.array_equal(first[("gradcam", "layer4")], second[("gradcam", "layer4")])
    module = model.module
    del model, module, first, second
    gc.collect()
    assert cache._objects == {}


def test_minus_keeps_what_one_class_has_and_the_other_has_not(image_dir):
    model = tiny()
    a = cam_core.explain(image_dir["chelsea"], model, layers=LAYERS, target="cat")
    b = cam_core.explain(image_dir["chelsea"], model, layers=LAYERS, target="rocket")
    diff = a.minus(b)
    assert diff.target == "class:cat, not class:rocket" and diff.target_label == "cat"
    size = tuple(a.stored_maps().shape[:0:-1])  # at the model's scale (the difference is taken there)
    for key in a:
        expected = np.clip(a.resized(key, size) - b.resized(key, size), 0, 1)
        assert np.abs(diff.resized(key, size) - expected).max() < 1e-6
        assert diff[key].shape == a[key].shape and a.minus(a)[key].max() == 0
    with pytest.raises(ValueError):
        a.minus(cam_core.explain(image_dir["coffee"], model, layers=LAYERS))


@pytest.mark.parametrize("image, param, words", [
    ("notanimage", "image", "cannot read"), ("truncated", "image", "cannot read"), ("missing", "image", "not found"),
])
def test_an_image_that_cannot_be_read_is_refused_by_name(image_dir, image, param, words):
    with pytest.raises(cam_core.CamArgumentError) as e:
        cam_core.explain(image_dir[image], tiny(), layers=["layer4"])
    assert e.value.param == param and image_dir[image] in str(e.value)


def test_bad_arguments_are_refused_naming_the_parameter(image_dir, photos):
    model, photo = tiny(), image_dir["coffee"]
    cases = [
        (dict(image=np.zeros((8, 8, 3), np.float32)), "image", "uint8"),
        (dict(image=torch.zeros(3, 8, 8)), "image", "tensor"),
        (dict(target="zebra"), "target", "'zebra' is not one of the model's 4 classes"),
        (dict(target=9), "target", "out of range"),
        (dict(target="field:ground_truth"), "target", "FiftyOne sample"),
        (dict(layers=["layer9"]), "layers", "layer9"),
        (dict(methods=["nosuchcam"]), "methods", "nosuchcam"),
        (dict(model="torchvision:no_such_net"), "model", "no_such_net"),
        (dict(model=model, model_kwargs={"weights": None}), "model_kwargs", "by name"),
        (dict(device="tpu"), "device", "tpu"),
    ]
    for kwargs, param, words in cases:
        kwargs = dict(dict(image=photo, model=model, layers=["layer4"]), **kwargs)
        with pytest.raises(cam_core.CamArgumentError) as e:
            cam_core.explain(**kwargs)
        assert e.value.param == param and words in str(e.value), (kwargs, e.value)
    # a sample with no label in the target field
    sample = photos.first()
    sample["ground_truth"] = None
    sample.save()
    with pytest.raises(cam_core.CamArgumentError, match="no label in field 'ground_truth'"):
        cam_core.explain(sample, model, layers=["layer4"], target="field:ground_truth")


def test_images_in_every_form_give_the_same_map(image_dir):
    model, key = tiny(), ("gradcam", "layer4")
    path = image_dir["chelsea"]
    pil = Image.open(path)
    expected = cam_core.explain(path, model, layers=["layer4"])[key]
    for image in (pil, pil.convert("RGBA"), np.asarray(pil.convert("RGB"))):
        assert np.array_equal(cam_core.explain(image, model, layers=["layer4"])[key], expected)
    grey = cam_core.explain(np.asarray(pil.convert("L")), model, layers=["layer4"])[key]
    assert grey.shape == expected.shape
