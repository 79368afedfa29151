"""Token grids derived from the model and the input: hierarchical transformers
(whose grid shrinks stage by stage with no 4-D output of that size) and
models that add their class token late have their last stages accepted,
suggested, and explained as grad-cam explains them."""
import pytest
import torch
from torch import nn

import cam_core
from cam_core.engine import probe_model
from cam_core.engine.layers import LayerInfo
from cam_core.engine.targets import classifier_targets
from test_equivalence import as_numpy, atol, ours, photos, reference

METHODS = ["gradcam", "hirescam", "gradcamplusplus", "xgradcam", "layercam", "eigencam"]


class Logits(nn.Module):
    """A Hugging Face classifier's logits tensor, for grad-cam's own classes."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).logits


def hf_swin():
    """Hugging Face's Swin: its stages pass (B, N, C) tokens, merged 2x2 from one stage to the next."""
    from transformers import SwinConfig, SwinForImageClassification

    torch.manual_seed(0)
    config = SwinConfig(image_size=128, embed_dim=16, depths=[1, 1, 2, 1], num_heads=[1, 1, 2, 2], window_size=4,
                        num_labels=5)
    return SwinForImageClassification(config).eval()


def mvit():
    """timm's MViT v2: a 4-D patch embedding to a 24x24 grid, then tokens pooled to 12x12, 6x6 and 3x3."""
    import timm

    torch.manual_seed(0)
    return timm.create_model("mvitv2_tiny", pretrained=False, img_size=96, num_classes=5).eval()


def cait():
    """timm's CaiT: patch tokens alone through its blocks, a class token added before the class-attention blocks."""
    import timm

    torch.manual_seed(0)
    return timm.create_model("cait_xxs24_224", pretrained=False, depth=2, img_size=64, num_classes=5).eval()


# model, input side, its last stage's suggested layer, (layout, grid, prefix tokens, stride)
CASES = {
    "hf_swin": (hf_swin, 128, "swin.encoder.layers.3.blocks.0.layernorm_before", ("tokens", (4, 4), 0, (32, 32))),
    "mvit": (mvit, 96, "stages.3.blocks.1.norm1", ("tokens", (3, 3), 0, (32, 32))),
    "cait": (cait, 64, "blocks.1.norm1", ("tokens", (4, 4), 0, (16, 16))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_last_stages_are_accepted_and_suggested(case):
    factory, size, layer, (layout, grid, prefix, stride) = CASES[case]
    model = factory()
    p = probe_model(model, torch.zeros(1, 3, size, size))
    info = p.layers[layer]
    assert (info.layout, info.grid, info.prefix_tokens, info.stride) == (layout, grid, prefix, stride)
    assert cam_core.default_layers(model, transforms=_square(size)) == [layer]
    # no stage's tokens are refused: what is left has no grid (a pooled (1, C, 1), a class token alone)
    refused = [n for n, r in p.rejected.items() if "no token count" in r]
    assert all(n.endswith(("pooler", "head")) or ".attn" in n or "token_only" in n or n.startswith("head")
               for n in refused), refused


def test_every_stage_of_a_hierarchical_transformer_is_a_grid():
    model = hf_swin()
    p = probe_model(model, torch.zeros(1, 3, 128, 128))
    for stage, side in enumerate((32, 16, 8, 4)):
        info = p.layers[f"swin.encoder.layers.{stage}.blocks.0.layernorm_before"]
        assert info.grid == (side, side) and info.stride == (128 // side,) * 2
    # a class token added late: the blocks before it have no prefix, those after it one
    p = probe_model(cait(), torch.zeros(1, 3, 64, 64))
    assert p.layers["blocks.1"].prefix_tokens == 0 and p.layers["blocks_token_only.1.norm1"].prefix_tokens == 1


def test_token_grids_follow_the_input_size_rounding_as_the_model_does():
    info = LayerInfo("stage", None, (1, 3136, 8), "tokens", 1, (4, 4), (56, 56))
    assert info.to_nchw(torch.zeros(2, 1 + 57 * 57, 8), (225, 225)).shape == (2, 8, 57, 57)  # padded: rounded up
    assert info.to_nchw(torch.zeros(2, 1 + 56 * 57, 8), (224, 230)).shape == (2, 8, 56, 57)
    with pytest.raises(ValueError, match=r"has 50 tokens; expected 1 prefix tokens \+ a 56x56 grid"):
        info.to_nchw(torch.zeros(1, 50, 8), (224, 224))
    # a model probed at one size and run at another
    model = hf_swin()
    info = probe_model(model, torch.zeros(1, 3, 128, 128)).layers["swin.encoder.layers.3.blocks.0.layernorm_before"]
    store = {}
    handle = info.module.register_forward_hook(lambda m, a, out: store.setdefault("out", out))
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 256, 192))
    finally:
        handle.remove()
    assert info.to_nchw(store["out"], (256, 192)).shape == (1, 128, 8, 6)


# GradCAM++ cubes the gradients; those of a random CaiT's blocks are so small that the cubes underflow in
# float32 (grad-cam's own map is empty too): there equality would say nothing
@pytest.mark.parametrize("case,method", [(c, m) for c in CASES for m in METHODS if (c, m) != ("cait", "gradcamplusplus")])
def test_maps_of_the_new_stages_equal_gradcam(case, method):
    factory, size, layer, _ = CASES[case]
    model = factory()
    x = photos(size)
    res, (info,) = ours(method, model, [layer], x, lambda out: classifier_targets(out, None))
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    targets = [ClassifierOutputTarget(i) for i in res.indices]
    wrapped = Logits(model) if case == "hf_swin" else model
    expected = reference(method, wrapped, info.module, x, targets, info.reshape_transform((size, size)))
    got = as_numpy(res.maps[(method, layer)])
    assert got.shape == expected.shape == (2, size, size)
    assert got.max() > 0.5, f"{method} on {case}: map is empty"
    torch.testing.assert_close(torch.from_numpy(got), torch.from_numpy(expected), atol=atol(method), rtol=0)


def _square(size):
    from torchvision import transforms as T

    return T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor()])
