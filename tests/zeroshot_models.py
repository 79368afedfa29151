"""Small zero-shot (image-text) models with random weights: OpenCLIP models
with ViT and ResNet image towers (open_clip ships CLIP's tokenizer), and a
transformers CLIP saved with its processor, whose tokenizer is built here
from a byte-level vocabulary (nothing can be downloaded)."""
import json

import torch

SIZE = 64


def open_clip_model(tower="vit", seed=0):
    """An ``open_clip.CLIP`` with CLIP's text vocabulary (its tokenizer is open_clip's own)."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(seed)
    if tower == "vit":
        vision = CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=16, image_size=SIZE)
    else:  # open_clip's ModifiedResNet, with its attention pool
        vision = CLIPVisionCfg(layers=(1, 1, 1, 1), width=16, head_width=16, image_size=SIZE)
    text = CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=2, layers=2)
    return CLIP(embed_dim=32, vision_cfg=vision, text_cfg=text).eval()


def _byte_symbols():
    # GPT-2's printable stand-ins for the 256 bytes, as CLIP's BPE vocabulary spells them
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return list(out.values())


def clip_processor(folder):
    """A ``CLIPProcessor`` (64 px images; a character-level CLIP tokenizer) written to ``folder``."""
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    image = CLIPImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
    processor = CLIPProcessor(image_processor=image, tokenizer=tokenizer)
    processor.save_pretrained(folder)
    return processor


def hf_clip(seed=0):
    """A ``transformers.CLIPModel``: a 2-block ViT (patch 16 at 64 px) and a 2-block text tower."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = CLIPConfig(text_config=dict(small, vocab_size=514, max_position_embeddings=77, bos_token_id=512,
                                         eos_token_id=513, pad_token_id=513),
                        vision_config=dict(small, image_size=SIZE, patch_size=16), projection_dim=16)
    return CLIPModel(config).eval()


def saved_clip(folder, seed=0):
    """``hf_clip`` and its processor saved in ``folder`` (what ``"hf:<folder>"`` and FiftyOne's zoo load)."""
    clip_processor(folder)
    model = hf_clip(seed)
    model.save_pretrained(folder)
    return model


def prompt_classifier(classes=("cat", "coffee", "rocket", "person")):
    """The ViT OpenCLIP model with class names: what a registered factory
    gives the App server (tests/test_app_zeroshot.py)."""
    model = open_clip_model()
    model.classes = list(classes)
    return model
