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


def yolos(seed=0):
    """A YOLOS (a ViT whose 6 detection tokens follow its class token and patches): logits (B, 6, 4 + 1
    no-object), pred_boxes; 4x4 patches at a 64 px input."""
    from transformers import YolosConfig, YolosForObjectDetection

    torch.manual_seed(seed)
    config = YolosConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         image_size=[SIZE, SIZE], patch_size=16, num_detection_tokens=6, num_labels=4,
                         id2label={0: "cat", 1: "dog", 2: "person", 3: "cup"})
    model = without_zero_weights(YolosForObjectDetection(config)).eval()
    with torch.no_grad():
        # zero at initialisation, then barely apart: every detection token would give nearly the same box
        model.vit.embeddings.detection_tokens.normal_(0, 1)
    return model


def rtdetr(seed=0):
    """An RT-DETR with a small ResNet backbone (three levels: 8x8, 4x4, 2x2 at a 64 px input): logits
    (B, 6, 4) scored by a sigmoid each (no no-object class), pred_boxes."""
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrResNetConfig

    torch.manual_seed(seed)
    backbone = RTDetrResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                  out_features=["stage2", "stage3", "stage4"])
    config = RTDetrConfig(backbone_config=backbone, use_pretrained_backbone=False, d_model=32, encoder_hidden_dim=32,
                          encoder_in_channels=[32, 64, 128], feat_strides=[8, 16, 32], encoder_layers=1,
                          encoder_ffn_dim=64, encoder_attention_heads=2, decoder_layers=1, decoder_ffn_dim=64,
                          decoder_attention_heads=2, decoder_in_channels=[32, 32, 32], num_feature_levels=3,
                          decoder_n_points=2, num_queries=6, num_denoising=0, num_labels=4,
                          id2label={0: "cat", 1: "dog", 2: "person", 3: "cup"})
    return without_zero_weights(RTDetrForObjectDetection(config)).eval()


def upernet(seed=0):
    """An UperNet over a small ConvNeXt (four stages, 16 to 128 channels): logits (B, 5, H, W) at the input's size."""
    from transformers import ConvNextConfig, UperNetConfig, UperNetForSemanticSegmentation

    torch.manual_seed(seed)
    backbone = ConvNextConfig(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                              out_features=["stage1", "stage2", "stage3", "stage4"])
    config = UperNetConfig(backbone_config=backbone, hidden_size=32, use_auxiliary_head=False, num_labels=5,
                           id2label={i: f"class{i}" for i in range(5)})
    return without_zero_weights(UperNetForSemanticSegmentation(config)).eval()
