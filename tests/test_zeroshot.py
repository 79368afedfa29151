"""Zero-shot classifiers (OpenCLIP, transformers' CLIP): maps equal
grad-cam's on the model's own image-text scores, ``target="text:<prompt>"``
explains any prompt, FiftyOne's zero-shot models work as they are, and the
model is left as found."""
import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import cam_core
import zeroshot_models as zm
from cam_core.engine import CamEngine
from cam_core.engine.targets import classifier_targets
from cam_core.errors import CamArgumentError
from cam_core.models.cam_model import from_object
from test_equivalence import photos, reference

CLASSES = ["cat", "dog", "plane"]


class OpenClipScores(torch.nn.Module):
    """open_clip's own forward on the images and fixed texts: its scaled cosine similarities."""

    def __init__(self, model, texts):
        super().__init__()
        from open_clip.tokenizer import SimpleTokenizer

        self.model, self.tokens = model, SimpleTokenizer()(texts)

    def forward(self, x):
        image, text, scale = self.model(x, self.tokens)[:3]
        return scale * image @ text.t()


class HFClipScores(torch.nn.Module):
    """transformers' own ``logits_per_image`` for the images and fixed texts."""

    def __init__(self, model, processor, texts):
        super().__init__()
        self.model, self.tokens = model, dict(processor(text=texts, padding=True, return_tensors="pt"))

    def forward(self, x):
        return self.model(pixel_values=x, **self.tokens).logits_per_image


def _maps(cam_model, x):
    d = cam_core.describe_model(cam_model)
    assert d.kind == "classifier" and d.classes == CLASSES
    [layer] = d.resolve_layers(None)
    engine = CamEngine(d.model.module, [layer], ["gradcam"])
    try:
        res = engine.explain(x, lambda out: classifier_targets(out, None))
    finally:
        engine.close()
    return layer, res


@pytest.mark.parametrize("tower", ["vit", "resnet"])
def test_open_clip_maps_equal_gradcam(tower):
    model = zm.open_clip_model(tower)
    x = photos(zm.SIZE)
    layer, res = _maps(from_object(model, classes=CLASSES), x)
    own = OpenClipScores(model, [f"a photo of a {c}" for c in CLASSES])
    with torch.no_grad():
        predicted = own(x).argmax(1).tolist()
    assert list(res.indices) == predicted  # the head's scores rank the classes as the model's own forward does
    # the suggested layer is one whose every position reaches the score: a ViT's last block's input
    # norm (its output's patch tokens are dropped by the class-token pool), a ResNet's last stage
    assert layer.name == ("visual.transformer.resblocks.1.ln_1" if tower == "vit" else "visual.layer4")
    expected = reference("gradcam", own, layer.module, x, [ClassifierOutputTarget(i) for i in predicted],
                         layer.reshape_transform((zm.SIZE,) * 2))
    got = res.maps[("gradcam", layer.name)].numpy()
    assert got.shape == expected.shape == (2, zm.SIZE, zm.SIZE) and expected.max() > 0.5
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_hf_clip_maps_equal_gradcam(tmp_path):
    from transformers import CLIPProcessor

    zm.saved_clip(tmp_path)
    processor = CLIPProcessor.from_pretrained(tmp_path)
    model = zm.hf_clip()
    cam_model = from_object(model, transforms=processor, classes=CLASSES)  # each name its own prompt
    x = photos(zm.SIZE)
    layer, res = _maps(cam_model, x)
    own = HFClipScores(model, processor, CLASSES)
    with torch.no_grad():
        logits = own(x)
    np.testing.assert_allclose(cam_model.module(x).detach(), logits, atol=1e-5)
    predicted = logits.argmax(1).tolist()
    assert list(res.indices) == predicted
    assert layer.name == "vision_model.encoder.layers.1.layer_norm1"
    expected = reference("gradcam", own, layer.module, x, [ClassifierOutputTarget(i) for i in predicted],
                         layer.reshape_transform((zm.SIZE,) * 2))
    got = res.maps[("gradcam", layer.name)].numpy()
    assert expected.max() > 0.5
    np.testing.assert_allclose(got, expected, atol=2e-5)


def _photo():
    return Image.fromarray(np.asarray(photos(96)[0].permute(1, 2, 0).mul(255).clamp(0, 255).byte()))


def test_text_target_explains_any_prompt():
    model = zm.open_clip_model()
    cam_model = from_object(model, classes=CLASSES)
    img = _photo()
    seen = cam_core.explain(img, cam_model, target="text:a red car")
    assert seen.target_label == "a red car" and seen.target == "text:a red car"
    assert cam_model.classes == CLASSES and cam_model.module.text_features.shape[0] == 3  # the caller's kept
    # the same map as the prompt given among the classes
    listed = cam_core.explain(img, from_object(model, classes=CLASSES + ["x"]), target="x")
    prompted = cam_core.explain(img, from_object(model, classes=CLASSES), target="text:a photo of a x")
    assert prompted.target_label == "a photo of a x"
    [key] = listed.keys()
    np.testing.assert_allclose(prompted[key], listed[key], atol=2e-5)
    # a class's own prompt is that class
    dog = cam_core.explain(img, cam_model, target="text:a photo of a dog")
    assert (dog.target_label, dog.target_index) == ("dog", 1) and dog.target == "text:a photo of a dog"
    assert not np.allclose(seen[key], listed[key], atol=1e-3)



def test_a_factory_names_a_zero_shot_models_classes_by_its_attribute():
    """A registered factory cannot pass classes=: the model's own ``classes``
    attribute becomes its prompts, here and in every process that builds it."""
    with cam_core.checks.allow_factory_modules("zeroshot_models"):
        cam_core.register_factory("zs-factory", "zeroshot_models:prompt_classifier", overwrite=True)
        try:
            built = cam_core.load_model("zs-factory")
        finally:
            cam_core.unregister_factory("zs-factory")
    assert built.classes == ["cat", "coffee", "rocket", "person"]
    assert built.vocabulary.prompts == [f"a photo of a {c}" for c in built.classes]
    # classes= still wins over the attribute
    assert from_object(zm.prompt_classifier(), classes=CLASSES).classes == CLASSES

def test_zero_shot_misuse_is_refused_clearly():
    img = _photo()
    with pytest.raises(CamArgumentError, match="zero-shot model .* classes are fixed"):
        cam_core.explain(img, cam_core.load_model("torchvision:resnet18", weights=None), target="text:a dog")
    with pytest.raises(CamArgumentError, match="has no classes yet: pass classes"):
        cam_core.explain(img, zm.open_clip_model())
    with pytest.raises(CamArgumentError, match="'text:' has no prompt"):
        cam_core.explain(img, zm.open_clip_model(), target="text: ")
    with pytest.raises(CamArgumentError, match="model_kwargs are the loading arguments of a model given by name"):
        cam_core.explain(img, zm.open_clip_model(), classes=CLASSES, target="text:a dog", model_kwargs={"weights": None})
    with pytest.raises(CamArgumentError, match="need its tokenizer: pass its processor as transforms="):
        from_object(zm.hf_clip(), classes=CLASSES)
    with pytest.raises(CamArgumentError, match="not an OpenCLIP model name; closest: ViT-B-32"):
        cam_core.load_model("open_clip:ViT-B-33")
    with pytest.raises(CamArgumentError, match="cannot load OpenCLIP 'ViT-S-32' with pretrained='no-such-tag'"):
        cam_core.load_model("open_clip:ViT-S-32", pretrained="no-such-tag")  # the loading path, up to the download


def test_model_left_as_found():
    model = zm.open_clip_model().train()
    model.transformer.eval()
    modes = {n: m.training for n, m in model.named_modules()}
    handle = model.visual.register_forward_hook(lambda *a: None)
    hooks = {n: len(m._forward_hooks) for n, m in model.named_modules()}
    cam_core.explain(_photo(), model, classes=CLASSES, methods=["gradcam", "gradcam++"])
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: len(m._forward_hooks) for n, m in model.named_modules()} == hooks
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    handle.remove()


@pytest.fixture
def photos_dataset(dataset, image_dir):
    import fiftyone as fo

    dataset.add_samples([fo.Sample(filepath=image_dir[n]) for n in ("astronaut", "chelsea", "coffee")])
    return dataset


def _heatmaps(dataset, run_key):
    [field] = [f for f in dataset.get_field_schema() if f.startswith(f"{run_key}_gradcam_")]
    return [s[field] for s in dataset]


def test_fiftyone_zero_shot_models_on_a_dataset(photos_dataset, tmp_path):
    """FiftyOne's own zero-shot models, as ``apply_model`` takes them: OpenCLIP (the zoo's
    ``open-clip-torch`` model class, random weights) and a transformers CLIP from a saved folder."""
    import fiftyone.utils.open_clip as fouo
    import fiftyone.utils.transformers as fout

    dataset = photos_dataset
    clip = fouo.TorchOpenClipModel(fouo.TorchOpenClipModelConfig(
        {"clip_model": "ViT-S-32", "pretrained": "", "text_prompt": "A photo of", "classes": ["cat", "dog"],
         "device": "cpu"}))
    cam_model = from_object(clip)
    assert cam_model.classes == ["cat", "dog"] and cam_model.vocabulary.prompts == ["A photo of cat", "A photo of dog"]
    results = cam_core.compute_cams(dataset, clip, run_key="oc", methods=["gradcam"], target="text:a bird",
                                    batch_size=2, output_dir=str(tmp_path / "oc"))
    assert results.num_samples == 3 and results.num_skipped == 0
    assert dataset.get_run_info("oc").config.target == "text:a bird"
    assert [h.target_label for h in _heatmaps(dataset, "oc")] == ["a bird"] * 3
    assert clip.classes == ["cat", "dog"]  # FiftyOne's model keeps its classes

    zm.saved_clip(tmp_path / "hf")
    wrapper = fout.FiftyOneZeroShotTransformerForImageClassification(
        fout.FiftyOneZeroShotTransformerForImageClassificationConfig(
            {"name_or_path": str(tmp_path / "hf"), "classes": ["cat", "dog"], "text_prompt": "A photo of",
             "device": "cpu"}))
    assert from_object(wrapper).vocabulary.prompts == wrapper.text_prompts
    results = cam_core.compute_cams(dataset, wrapper, run_key="hf", methods=["gradcam"], batch_size=2,
                                    output_dir=str(tmp_path / "hfmaps"))
    assert results.num_samples == 3 and results.num_skipped == 0
    heatmaps = _heatmaps(dataset, "hf")
    assert all(h.map_path for h in heatmaps) and {h.target_label for h in heatmaps} <= {"cat", "dog"}
