"""The Ultralytics YOLO adapter: what it claims, the CamModel it makes (the
model's letterbox and its geometry, layers, classes), names it loads, and
the model left exactly as found."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import cam_core
import yolo_models as ym
from cam_core.engine.detector import DetectorEngine
from cam_core.engine.detection import predicted_objects
from cam_core.errors import CamArgumentError
from cam_core.media.geometry import apply_transforms, transform_steps
from cam_core.models.adapters import yolo as adapter


def test_claims_by_the_models_type():
    # the adapter decides from the type's module and name (that a plain model imports no family's
    # library: tests/test_adapter_contract.py)
    model = ym.cached("detect")
    assert adapter.claims(model) and adapter.claims(model.model) and not adapter.claims(model.model.model[0])


@pytest.mark.parametrize("task", ["detect", "segment", "pose", "obb", "classify"])
def test_adapted_from_every_object_the_same(task):
    from fiftyone.utils.ultralytics import convert_ultralytics_model

    yolo = ym.yolo(task, lively=False)
    state = {k: v.clone() for k, v in yolo.model.state_dict().items()}
    cams = [cam_core.describe_model(m) for m in (yolo, yolo.model)]
    cams.append(cam_core.describe_model(convert_ultralytics_model(yolo)))
    for d in cams:
        assert d.model.module.model is yolo.model  # wrapped, not copied
        assert d.kind == ("classifier" if task == "classify" else "detector")
        assert d.object_masks == (task == "segment")
        assert d.classes == [str(i) for i in range(len(yolo.model.names))] and d.num_outputs == len(d.classes)
        assert d.layer_names == cams[0].layer_names
    head = yolo.model.model[-1]
    suggested = f"model.model.{head.f[0]}" if task != "classify" else f"model.model.{len(yolo.model.model) - 2}"
    assert all(d.default_layers == [suggested] for d in cams)
    if task != "classify":
        assert cams[0].model.transforms.auto and not cams[2].model.transforms.auto  # FiftyOne fills the square
    assert all(torch.equal(v, state[k]) for k, v in yolo.model.state_dict().items())


def test_letterbox_is_ultralytics_own():
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(0)
    for w, h in [(310, 500), (500, 310), (64, 64), (1000, 37), (90, 91)]:
        array = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        for auto in (True, False):
            expected = LetterBox((64, 96), auto=auto, stride=32)(image=array.copy())
            got = adapter.Letterbox((64, 96), 32, auto)(Image.fromarray(array))
            assert got.dtype == torch.float32 and got.shape == (3, *expected.shape[:2])
            np.testing.assert_array_equal((got * 255).round().byte().permute(1, 2, 0).numpy(), expected)


@pytest.mark.parametrize("size", [(310, 500), (500, 310), (333, 129)])
@pytest.mark.parametrize("auto", [True, False])
def test_maps_land_on_the_image_through_the_letterbox(size, auto):
    # a known pattern of input pixels, placed back, lands where the image shows it; nothing of the image is cut
    w, h = size
    img = np.full((h, w, 3), 90, np.uint8)
    x1, y1, x2, y2 = w // 5, h // 3, w // 5 + w // 4, h // 3 + h // 5
    img[y1:y2, x1:x2] = ym.RED
    x, frame = apply_transforms(transform_steps(adapter.Letterbox((160, 160), 32, auto)), Image.fromarray(img))
    red = ((x[0] > 0.75) & (x[1] < 0.2)).float()  # the input pixels showing the square
    grey = (x - 114 / 255).abs().amax(dim=0) > 1e-3  # the input pixels showing the image (not the padding)
    assert tuple(x.shape[-2:]) == ((160, 160) if not auto else x.shape[-2:]) and x.shape[-1] % 32 == 0
    placed = frame.place(red.numpy())
    whole = frame.place(grey.float().numpy())
    assert whole.shape == (round(h / frame.scale[1]), round(w / frame.scale[0])) and whole.all()
    back = np.asarray(Image.fromarray((placed * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)) > 127
    truth = np.zeros((h, w), bool)
    truth[y1:y2, x1:x2] = True
    assert (back & truth).sum() / (back | truth).sum() > 0.9


def test_the_model_is_left_as_found():
    from fiftyone.utils.ultralytics import convert_ultralytics_model

    yolo = ym.yolo("segment")
    task = yolo.model
    for p in list(task.parameters())[::2]:
        p.requires_grad_(False)  # as ultralytics loads weights: all False; here mixed
    task.model[3].eval()  # a mixed mode
    own = task.model[5].register_forward_hook(lambda *a: None)
    fo_model = convert_ultralytics_model(yolo)  # FiftyOne creates a predictor: the one it had must stay
    predictor = yolo.predictor
    head = task.model[-1]
    flags = [p.requires_grad for p in task.parameters()]
    modes = [m.training for m in task.modules()]
    cache = {k: head.__dict__.get(k) for k in ("anchors", "strides", "shape")}
    before = {k: v.clone() for k, v in task.state_dict().items()}
    n_modules = len(list(task.modules()))
    for model in (yolo, fo_model, task):
        d = cam_core.describe_model(model)
        engine = DetectorEngine(d.model.module, d.resolve_layers(["model.model.15", "model.model.21"]),
                                ["gradcam", "eigencam"])
        res = engine.explain(torch.rand(2, 3, 64, 96), lambda outs: [predicted_objects(o, 0.0, 2) for o in outs])
        assert [len(o) for o in res.objects] == [2, 2] and res.objects[0][0].mask.shape == (64, 96)
        assert [p.requires_grad for p in task.parameters()] == flags and all(p.grad is None for p in task.parameters())
        assert [m.training for m in task.modules()] == modes
        assert {k: head.__dict__.get(k) for k in cache} == cache  # the anchors it caches, as they were
        assert all(torch.equal(v, before[k]) for k, v in task.state_dict().items())
        assert len(list(task.modules())) == n_modules and not task.is_fused()
        assert {id(m): list(m._forward_hooks) for m in task.modules() if m._forward_hooks} == {id(task.model[5]): [own.id]}
        assert not any(m._forward_pre_hooks or m._backward_hooks for m in task.modules())
        assert yolo.predictor is predictor and yolo.trainer is None
    own.remove()


def test_a_fused_model_is_explained_as_it_is():
    yolo = ym.yolo("detect", seed=3)
    x = torch.rand(1, 3, 64, 64)
    module = cam_core.describe_model(yolo).model.module.eval()
    with torch.no_grad():
        a = module(x)[0]
    yolo.model.fuse(verbose=False)  # as a predictor leaves it: conv and batch norm folded
    after = cam_core.describe_model(yolo)
    assert yolo.model.is_fused() and "model.model.15" in after.layer_names and after.default_layers == ["model.model.15"]
    with torch.no_grad():
        b = after.model.module.eval()(x)[0]
    assert torch.equal(a["labels"], b["labels"]) and torch.allclose(a["scores"], b["scores"], atol=1e-4)


def test_names_load_offline_and_say_what_to_do_without_network(tmp_path):
    model = cam_core.load_model("ultralytics:yolov8n-pose.yaml")
    assert model.name == "ultralytics:yolov8n-pose.yaml" and model.module.model.yaml["kpt_shape"] == [17, 3]
    assert cam_core.describe_model(model).kind == "detector"
    with pytest.raises(CamArgumentError) as err:
        cam_core.load_model("ultralytics:yolov8n.pt")
    from ultralytics.utils import SETTINGS

    assert err.value.param == "model" and "download" in err.value.message
    assert str(SETTINGS["weights_dir"]) in err.value.message and "ultralytics:/path/to/yolov8n.pt" in err.value.message
    assert not os.path.exists("yolov8n.pt")  # nothing written into the working folder
    with pytest.raises(CamArgumentError) as err:
        cam_core.load_model("ultralytics:yolov99z.yaml")
    assert "yolov8n.yaml" in err.value.message
    # a weights file given by its path is loaded from there
    yolo = ym.yolo("detect", lively=False)
    yolo.ckpt = {"train_args": {"imgsz": 90}}  # trained at 90: predicted at 96, the stride's next multiple
    path = str(tmp_path / "mine.pt")
    yolo.save(path)
    loaded = cam_core.load_model(f"ultralytics:{path}")
    assert loaded.name == f"ultralytics:{path}" and loaded.transforms.imgsz == (96, 96)
    d = cam_core.describe_model(loaded)
    res = DetectorEngine(loaded.module, d.resolve_layers(None), ["gradcam"]).explain(
        torch.rand(1, 3, 96, 96), lambda outs: [predicted_objects(o, 0.0, 1) for o in outs])
    assert len(res.objects[0]) == 1


def test_refused_heads_and_exported_models():
    from ultralytics.nn.tasks import DetectionModel

    task = DetectionModel("yolov8n.yaml", verbose=False)
    task.model[-1] = torch.nn.Identity()  # a head the adapter does not know (as RT-DETR's decoder)
    task.model[-1].f = [15, 18, 21]
    with pytest.raises(CamArgumentError) as err:
        cam_core.describe_model(task)
    assert "Identity head" in err.value.message and "Detect" in err.value.message
    yolo = ym.yolo("detect", lively=False)
    del yolo._modules["model"]
    yolo.model = "yolov8n.onnx"  # what an exported model holds: a path, no module
    with pytest.raises(CamArgumentError) as err:
        cam_core.describe_model(yolo)
    assert "exported" in err.value.message and ".pt" in err.value.message
