"""The compute form offers a zero-shot model's text prompts as a target, and
a run from the operator explains the prompt written in it."""
import pytest

import cam_core
import fiftyone.operators as foo
import zeroshot_models as zm
from plugin import photos, plugins_dir, uri  # noqa: F401 (fixtures)
from test_detector_operators import form


@pytest.fixture(scope="module")
def tiny_clip(plugins_dir):  # noqa: F811 (a fixture)
    cam_core.register_model("tiny_clip", zm.open_clip_model(), classes=["cat", "dog"])
    return "tiny_clip"


def test_the_form_explains_a_text_prompt(photos, tiny_clip):
    base = {"model_source": "registered", "model": tiny_clip, "run_key": "z"}
    props = form(photos, "compute_cams", base)
    assert [c.value for c in props["target"].view.choices] == ["prediction", "label_field", "class", "text"]
    props = form(photos, "compute_cams", dict(base, target="text"))
    assert props["text_prompt"].required and "text_prompt" in props
    props = form(photos, "compute_cams", dict(base, target="text", text_prompt="a red car"))
    assert not props["text_prompt"].invalid and not props["model"].invalid

    res = foo.get_operator(uri("compute_cams"))(photos.limit(2), tiny_clip, methods=["gradcam"], run_key="z",
                                                 target="text:a red car", device="cpu")
    assert res.num_samples == 2
    assert photos.get_run_info("z").config.target == "text:a red car"
    field = res.fields[0]
    assert [s[field].target_label for s in photos.limit(2)] == ["a red car"] * 2
    # a model of fixed classes has no such choice
    props = form(photos, "compute_cams", {"model_source": "torchvision", "model": "resnet18", "pretrained": False,
                                             "run_key": "r"})
    assert "text" not in [c.value for c in props["target"].view.choices]
