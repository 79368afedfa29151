"""The Hugging Face transformers adapter: what it claims (without importing
transformers), an image processor as transforms with its geometry, FiftyOne's
wrappers unwrapped, unsupported heads refused, compute_cams on real images
for a classifier, a segmenter and a detector (field:<Detections> matched),
and the model left exactly as found."""

import numpy as np
import pytest
import torch
from PIL import Image

import cam_core
import hf_models as hm
from cam_core.errors import CamArgumentError
from cam_core.media.geometry import apply_transforms, transform_steps
from cam_core.models.adapters import hf as adapter


def test_claims_by_the_models_type():
    # (that a plain model imports no family's library: tests/test_adapter_contract.py)
    model = hm.build("ViTForImageClassification")
    assert adapter.claims(model) and not adapter.claims(model.vit.embeddings)


def test_unsupported_models_are_refused_with_what_is_explained():
    from transformers import ViTConfig, ViTModel

    base = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                              image_size=32))
    with pytest.raises(CamArgumentError, match="ViTModel is not explained here.*ForImageClassification"):
        cam_core.describe_model(base)


@pytest.mark.parametrize("size", [(100, 50), (37, 90)])
def test_processor_geometry_lands_on_the_image(size):
    from transformers import ConvNextImageProcessor

    w, h = size
    img = np.full((h, w, 3), 90, np.uint8)
    x1, y1, x2, y2 = w // 4, h // 3, w // 4 + w // 3, h // 3 + h // 4
    img[y1:y2, x1:x2] = (230, 20, 20)
    for processor in (hm.processor(48), ConvNextImageProcessor(size={"shortest_edge": 48})):
        # ConvNeXt: the short side resized to 48 / 0.875, then a centre crop of 48 x 48 (part of the image cut)
        t = cam_core.describe_model(hm.build("ConvNextForImageClassification"), transforms=processor).model.transforms
        x, frame = apply_transforms(transform_steps(t), Image.fromarray(img))
        assert tuple(x.shape) == (3, 48, 48)
        red = ((x[0] > 0.5) & (x[1] < -0.5)).float()  # normalised: the square's pixels in the input
        placed = frame.place(red.numpy())
        canvas = np.zeros((round(h / frame.scale[1]), round(w / frame.scale[0])))
        assert placed.shape == canvas.shape
        back = np.asarray(Image.fromarray((placed * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)) > 127
        truth = np.zeros((h, w), bool)
        truth[y1:y2, x1:x2] = True
        assert (back & truth).sum() / (back | truth).sum() > 0.8, type(processor).__name__


def test_fiftyone_wrappers_are_unwrapped(tmp_path):
    from fiftyone.utils.transformers import convert_transformers_model
    from transformers import AutoModelForImageClassification, AutoModelForObjectDetection, DetrImageProcessor

    # FiftyOne loads the processor by the model's name: a folder written by save_pretrained (offline)
    hm.build("ViTForImageClassification").save_pretrained(tmp_path / "vit")
    hm.processor().save_pretrained(tmp_path / "vit")
    hm.detr().save_pretrained(tmp_path / "detr")
    DetrImageProcessor(size={"height": 64, "width": 64}).save_pretrained(tmp_path / "detr")
    for folder, auto, kind in [("vit", AutoModelForImageClassification, "classifier"),
                               ("detr", AutoModelForObjectDetection, "detector")]:
        model = auto.from_pretrained(tmp_path / folder).eval()
        wrapped = convert_transformers_model(model)
        d = cam_core.describe_model(wrapped)
        assert d.kind == kind and d.classes == [model.config.id2label[i] for i in range(model.config.num_labels)]
        inner = d.model.module.model if kind == "detector" else d.model.module
        assert inner is model  # the user's module, not a copy
        assert type(d.model.transforms).__name__ == "ImageProcessorTransforms"
        assert d.default_layers == cam_core.describe_model(model, transforms=wrapped.transforms.processor).default_layers


def _state(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            {k: v.clone() for k, v in model.state_dict().items()},
            {id(m): (list(m._forward_hooks), list(m._forward_pre_hooks)) for m in model.modules()})


def _same(model, state):
    modes, flags, values, hooks = state
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, values[k]) for k, v in model.state_dict().items())
    assert {id(m): (list(m._forward_hooks), list(m._forward_pre_hooks)) for m in model.modules()} == hooks


def test_compute_cams_on_photographs_for_each_kind(dataset, image_dir, tmp_path):
    import fiftyone as fo

    names = ["astronaut", "coffee"]
    dataset.add_samples([fo.Sample(filepath=image_dir[n]) for n in names])
    # the whole image at the model's scale (the processor stretches it to 64 x 64; the App stretches it back)
    canvases = [apply_transforms(transform_steps(adapter.adapt_transforms(hm.processor())),
                                 Image.open(image_dir[n]).convert("RGB"))[1].canvas_size()[::-1] for n in names]
    assert canvases == [(64, 64), (64, 64)]
    classifier = hm.build("ViTForImageClassification")
    segmenter = hm.build("SegformerForSemanticSegmentation")
    detector = hm.detr(seed=1)
    for p in list(classifier.parameters())[::3]:
        p.requires_grad_(False)  # a mixed state, left as it is
    detector.model.backbone.train()  # a mixed mode
    with torch.no_grad():  # transformers 5 models add their own hooks on their first forward: kept, as found
        for m in (classifier, segmenter, detector):
            m(pixel_values=torch.zeros(1, 3, 64, 64))
    states = {id(m): _state(m) for m in (classifier, segmenter, detector)}
    for key, model, kw in [("cls", classifier, {}), ("seg", segmenter, {}),
                           ("det", detector, dict(score_threshold=0.0, max_objects=2))]:
        res = cam_core.compute_cams(dataset, model, transforms=hm.processor(), methods=["gradcam"], run_key=key,
                                    num_workers=0, device="cpu", output_dir=str(tmp_path / key), **kw)
        assert res.num_samples == 2 and res.fields
        for sample, canvas in zip(dataset, canvases):
            for field in res.fields:
                assert np.array(Image.open(sample[field].map_path)).shape == canvas  # the whole image
        _same(model, states[id(model)])
    first = dataset.first()
    assert first[res.fields[0]] is not None
    # the boxes a user stored from the model's own output (normalised cxcywh: relative boxes on the image,
    # the processor stretching it) are matched by IoU and label and explained with the model's scores
    x = torch.stack([hm.processor()(images=Image.open(image_dir[n]).convert("RGB"), return_tensors="pt")
                     ["pixel_values"][0] for n in names])
    with torch.no_grad():
        out = detector(pixel_values=x)
    probs = out.logits.softmax(-1)[..., :-1]
    for b, sample in enumerate(dataset):
        q = int(probs[b].max(-1).values.argmax())
        cx, cy, bw, bh = out.pred_boxes[b, q].tolist()
        label = detector.config.id2label[int(probs[b, q].argmax())]
        sample["predicted"] = fo.Detections(detections=[fo.Detection(label=label, bounding_box=[cx - bw / 2, cy - bh / 2, bw, bh])])
        sample.save()
    cam_core.compute_cams(dataset, detector, transforms=hm.processor(), methods="gradcam", target="field:predicted",
                          run_key="matched", num_workers=0, device="cpu", output_dir=str(tmp_path / "m"))
    for b, sample in enumerate(dataset):
        [d] = sample["matched_detections"].detections
        assert d.label == sample["predicted"].detections[0].label and d.confidence == pytest.approx(float(probs[b].max()), rel=1e-4)
    _same(detector, states[id(detector)])


def test_names_load_from_a_folder_and_say_what_to_do_offline(tmp_path):
    model = hm.build("SegformerForSemanticSegmentation")
    model.save_pretrained(tmp_path / "seg")
    hm.processor().save_pretrained(tmp_path / "seg")
    loaded = cam_core.load_model(f"hf:{tmp_path / 'seg'}")
    assert loaded.name == f"hf:{tmp_path / 'seg'}" and type(loaded.transforms).__name__ == "ImageProcessorTransforms"
    assert loaded.classes == [f"class{i}" for i in range(5)] and not loaded.default_transforms
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.module.state_dict().items())
    # offline (HF_HUB_OFFLINE=1 in the tests): the hub is not reached, and the message says what to give
    with pytest.raises(CamArgumentError, match="(?s)cannot load the Hugging Face model 'hf:nobody/no-such-model'.*"
                                               "save_pretrained"):
        cam_core.load_model("hf:nobody/no-such-model")
