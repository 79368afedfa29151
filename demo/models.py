"""The demo's three models, small enough to train on a CPU in under a minute
(its fourth, the detector, is in :mod:`demo.detector`).

- :class:`DigitCNN`: a classifier with named stages ``features.0`` .. ``features.3``
- :class:`DigitFCN`: an FCN-style segmenter returning torchvision's ``{"out": (B, K+1, H, W)}``
- :func:`digit_vit`: a timm ViT (``vit_tiny_patch16_224``'s architecture, shrunk)

Each is wrapped with its preprocessing and class names into a
:class:`cam_core.CamModel` by :func:`demo.train.train_models`.
"""
import torch
from torch import nn
from torch.nn import functional as F

INPUT_SIZE = 64  # the models see the 128-pixel scenes at half size
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def preprocess():
    """PIL image -> normalised (3, 64, 64) tensor; cam_core tracks the resize."""
    from torchvision.transforms import v2 as T

    return T.Compose([
        T.Resize((INPUT_SIZE, INPUT_SIZE), antialias=True),
        T.ToImage(),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(MEAN, STD),
    ])


def _block(cin, cout, pool, stride=1):
    layers = [nn.MaxPool2d(2)] if pool else []
    layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers)


class DigitCNN(nn.Module):
    """A four-stage CNN classifier: ``features.0`` (32x32 grid), ``features.1`` and
    ``features.2`` (16x16), ``features.3`` (8x8), global average pooling, ``head``."""

    def __init__(self, num_classes, width=16):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            # a strided first convolution: full-resolution stages dominate the cost on a CPU
            nn.Sequential(nn.Conv2d(3, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()),  # 32x32
            _block(w, 2 * w, pool=True),        # 16x16
            _block(2 * w, 4 * w, pool=False),   # 16x16
            _block(4 * w, 4 * w, pool=True),    # 8x8
        )
        self.head = nn.Linear(4 * w, num_classes)

    def forward(self, x):
        x = self.features(x)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class DigitFCN(nn.Module):
    """A small fully convolutional segmenter: ``backbone.0`` .. ``backbone.2``
    (16x16 grid), a 1x1 ``classifier``, logits upsampled to the input size."""

    def __init__(self, num_classes, width=16):
        super().__init__()
        w = width
        self.backbone = nn.Sequential(
            _block(3, w, pool=True),            # 32x32
            _block(w, 2 * w, pool=True),        # 16x16
            _block(2 * w, 4 * w, pool=False),   # 16x16, wider context
        )
        self.classifier = nn.Conv2d(4 * w, num_classes, 1)

    def forward(self, x):
        logits = self.classifier(self.backbone(x))
        return {"out": F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)}


def digit_vit(num_classes):
    """timm's ViT-Tiny architecture shrunk to 64-pixel inputs: 8-pixel patches
    (an 8x8 grid of tokens), 2 blocks ``blocks.0`` and ``blocks.1`` of width 64.

    Two changes make it trainable in well under a minute on a CPU from 1,500
    images (a plain ViT stayed at chance after 6 epochs here): a convolutional
    patch embedding (see ``_conv_stem_embed``) and average pooling of the
    tokens instead of a class token, so the model has no prefix token
    (cam_core reads that from ``num_prefix_tokens``). With average pooling,
    explain the blocks' outputs (``blocks.0``, ``blocks.1``): their tokens
    feed the classifier directly. On a 3-block version trained with the
    mark, the last block's ``norm1`` (the usual choice for a class-token ViT)
    ranked the marked images at chance; its block output ranked them first.
    """
    import timm

    return timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=INPUT_SIZE, patch_size=8,
        embed_dim=64, depth=2, num_heads=4, num_classes=num_classes,
        class_token=False, global_pool="avg", embed_layer=_conv_stem_embed(),
    )


def _conv_stem_embed(widths=(16, 32)):
    from timm.layers import PatchEmbed

    class ConvStemPatchEmbed(PatchEmbed):
        """timm's PatchEmbed with its one 8x8 convolution replaced by three
        strided 3x3 convolutions and a 1x1 projection ("early convolutions
        help transformers see better", Xiao et al. 2021): the same 8x8 grid
        of tokens, far fewer steps to train."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            dim, a, b = self.proj.out_channels, widths[0], widths[1]
            self.proj = nn.Sequential(
                _block(self.proj.in_channels, a, pool=False, stride=2),
                _block(a, b, pool=False, stride=2),
                _block(b, b, pool=False, stride=2),
                nn.Conv2d(b, dim, 1),
            )

    return ConvStemPatchEmbed
