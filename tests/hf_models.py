"""Small Hugging Face transformers models with random weights (nothing can be
downloaded), their image processors, and FiftyOne's wrappers of them."""
import torch

from compat import HF, Spec, without_zero_weights

SIZE = 64


def build(cls, seed=0):
    """The architecture ``cls`` (a name in :data:`compat.HF`), random weights, eval mode."""
    import transformers

    config, kw = next((config, kw) for name, config, kw, _, _ in HF if name == cls)
    torch.manual_seed(seed)
    kw = dict(kw, id2label={i: f"class{i}" for i in range(kw["num_labels"])})
    return without_zero_weights(getattr(transformers, cls)(getattr(transformers, config)(**kw))).eval()


def detr(seed=0, queries=6):
    """A DETR with a small Hugging Face ResNet backbone: logits (B, queries, 4 + 1 no-object), pred_boxes.
    (queries=8 at a 64 px input is refused by the probe: an 8x8 feature map is taken for an 8-token
    attention matrix; see the report of issue 22.)"""
    from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig

    torch.manual_seed(seed)
    backbone = ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], out_features=["stage2"])
    config = DetrConfig(use_timm_backbone=False, backbone_config=backbone, use_pretrained_backbone=False, d_model=32,
                        encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=queries, num_labels=4,
                        id2label={0: "cat", 1: "dog", 2: "person", 3: "cup"})
    model = without_zero_weights(DetrForObjectDetection(config)).eval()
    with torch.no_grad():
        # a trained DETR's queries look at different places; random ones of std 1 give near-identical boxes,
        # whose IoU then matches one query's object to another's box
        model.model.query_position_embeddings.weight.normal_(0, 10)
        model.bbox_predictor.layers[-1].weight.normal_(0, 0.5)
    return model


def processor(size=SIZE):
    """A ViT image processor: a stretch to size x size, mean and std 0.5."""
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": size, "width": size})
