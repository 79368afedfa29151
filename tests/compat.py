"""The compatibility sweep: every torchvision classification, segmentation and
detection builder, a model of each of many timm families and a few Hugging
Face architectures, built offline with random weights, explained by
``compute_cams`` with their default layers on real photographs.

:func:`specs` lists the models (one small model per timm family, inputs as
small as each architecture takes); :func:`explain` runs one and returns what
happened, for tests/test_compat.py and scripts/compat_table.py.
"""
import time
from dataclasses import dataclass, field

import numpy as np
import torch

# what the sweep computes: two gradient methods, LayerCAM, and the two projections: EigenCAM of the
# activations and EigenGradCAM of activations x gradients
METHODS = ["gradcam", "gradcamplusplus", "layercam", "eigencam", "eigengradcam"]
# the maps that must not be empty: a projection's first component, sign-corrected, is empty only where
# what it projects is zero (EigenGradCAM: where the score's gradient does not reach the layer). A ReLU
# of a signed sum (GradCAM, GradCAM++, LayerCAM over a norm's signed outputs) may be empty everywhere
# with random weights
MUST_SHOW = ("eigencam", "eigengradcam")
IMAGES = ("astronaut", "coffee")  # 512x512 and 600x400: a square and a wide photograph


@dataclass
class Spec:
    """One model of the sweep.

    Attributes:
        source: ``"torchvision"``, ``"timm"`` or ``"transformers"``
        family: what the table groups by (the builder's module or timm family)
        name: the builder (torchvision, timm) or the architecture's class (transformers)
        kwargs: builder arguments: sizes and thresholds a user may set, never the architecture
        size: the side of the square input (detectors: the size they resize to inside)
        expect: ``"maps"`` (a refusal fails the sweep) or None (maps or a refusal that says why)
    """

    source: str
    family: str
    name: str
    kwargs: dict = field(default_factory=dict)
    size: int = 64
    expect: str = "maps"


# --- torchvision -------------------------------------------------------------

# inputs the architecture needs: fixed grids (MaxViT's 7x7 windows at every stage), a minimum size
TV_SIZES = {"maxvit_t": 224, "inception_v3": 160, "googlenet": 64, "alexnet": 128, "vit_h_14": 56}
# GoogLeNet and Inception v3 draw their initial weights from scipy's truncated normal unless told not to:
# seconds for a random initialisation that PyTorch's default makes as well
TV_KWARGS = {"googlenet": dict(init_weights=False), "inception_v3": dict(init_weights=False),
             "vit_b_16": dict(image_size=64), "vit_b_32": dict(image_size=64), "vit_l_16": dict(image_size=64),
             "vit_l_32": dict(image_size=64), "vit_h_14": dict(image_size=56)}
# detectors keep every box (random weights score low), resize small inside and consider few
# candidates (a box head over a thousand proposals is most of a small detector's time)
_RPN = dict(box_score_thresh=0.0, box_detections_per_img=5, rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50)
_DENSE = dict(score_thresh=0.0, detections_per_img=5, topk_candidates=100)
DET_KWARGS = {"fasterrcnn": _RPN, "maskrcnn": _RPN, "keypointrcnn": _RPN, "retinanet": _DENSE, "fcos": _DENSE,
              "ssd300": _DENSE, "ssdlite320": _DENSE}


def torchvision_specs():
    from torchvision import models

    out = []
    for name in models.list_models(module=models):
        out.append(Spec("torchvision", f"torchvision {_tv_family(name)}", name, TV_KWARGS.get(name, {}),
                        TV_SIZES.get(name, 64)))
    for name in models.list_models(module=models.segmentation):
        out.append(Spec("torchvision", "torchvision segmentation", name, dict(weights_backbone=None, aux_loss=False), 64))
    for name in models.list_models(module=models.detection):
        kw = next(v for k, v in DET_KWARGS.items() if name.startswith(k))
        if not name.startswith("ssd"):  # SSD's input size is fixed by its builder
            kw = dict(kw, min_size=128, max_size=160)
        out.append(Spec("torchvision", "torchvision detection", name, dict(kw, weights_backbone=None), 128))
    return out


def _tv_family(name):
    import re

    for prefix in ("wide_resnet", "swin_v2", "efficientnet_v2", "mobilenet_v2", "mobilenet_v3", "shufflenet_v2",
                   "regnet_x", "regnet_y", "inception_v3"):
        if name.startswith(prefix):
            return prefix
    return re.match(r"[a-z]+", name).group()


# --- timm: one small model per family -------------------------------------------

# (family, model, input side, builder arguments); img_size where the model's grid is fixed at build time
TIMM = [
    ("resnet", "resnet10t", 64, {}), ("resnetv2", "resnetv2_18", 64, {}), ("efficientnet", "efficientnet_b0", 64, {}),
    ("mobilenetv3", "mobilenetv3_small_050", 64, {}), ("regnet", "regnetx_002", 64, {}),
    ("convnext", "convnext_atto", 64, {}), ("densenet", "densenet121", 64, {}), ("dla", "dla46_c", 64, {}),
    ("dpn", "dpn48b", 64, {}), ("ghostnet", "ghostnet_050", 64, {}), ("hrnet", "hrnet_w18_small", 64, {}),
    ("rexnet", "rexnet_100", 64, {}), ("resnest", "resnest14d", 64, {}), ("selecsls", "selecsls42", 128, {}),
    ("senet", "legacy_seresnet18", 64, {}), ("sknet", "skresnet18", 64, {}), ("cspnet", "cspresnet50", 64, {}),
    ("byobnet", "gernet_s", 64, {}), ("vovnet", "ese_vovnet19b_slim", 64, {}), ("inception_v3", "inception_v3", 160, {}),
    ("nfnet", "nf_resnet26", 64, {}), ("res2net", "res2net50_14w_8s", 64, {}), ("xception", "xception41", 64, {}),
    ("vision_transformer", "vit_tiny_patch16_224", 64, dict(img_size=64)),
    ("deit", "deit_tiny_distilled_patch16_224", 64, dict(img_size=64)),
    ("beit", "beit_base_patch16_224", 64, dict(img_size=64, depth=2)),
    ("cait", "cait_xxs24_224", 64, dict(img_size=64)), ("coat", "coat_lite_tiny", 64, dict(img_size=64)),
    ("convit", "convit_tiny", 64, dict(img_size=64)), ("crossvit", "crossvit_tiny_240", 240, {}),
    ("xcit", "xcit_nano_12_p16_224", 64, dict(img_size=64)), ("levit", "levit_128s", 224, {}),
    ("mvitv2", "mvitv2_tiny", 64, dict(img_size=64)), ("pvt_v2", "pvt_v2_b0", 64, {}),
    ("twins", "twins_svt_small", 64, dict(img_size=64)), ("pit", "pit_ti_224", 64, dict(img_size=64)),
    ("tnt", "tnt_s_patch16_224", 64, dict(img_size=64)), ("nest", "nest_tiny", 64, dict(img_size=64)),
    ("volo", "volo_d1_224", 64, dict(img_size=64)),
    ("swin_transformer", "swin_tiny_patch4_window7_224", 64, dict(img_size=64, window_size=2)),
    ("swin_transformer_v2", "swinv2_tiny_window8_256", 64, dict(img_size=64, window_size=2)),
    ("swin_transformer_v2_cr", "swinv2_cr_tiny_224", 64, dict(img_size=64, window_size=2)),
    ("maxxvit", "maxvit_nano_rw_256", 64, dict(img_size=64)), ("efficientformer", "efficientformer_l1", 224, {}),
    ("efficientformer_v2", "efficientformerv2_s0", 224, {}), ("edgenext", "edgenext_xx_small", 64, {}),
    ("mobilevit", "mobilevit_xxs", 64, {}), ("fastvit", "fastvit_t8", 64, {}), ("repvit", "repvit_m0_9", 64, {}),
    ("tiny_vit", "tiny_vit_5m_224", 224, {}), ("davit", "davit_tiny", 64, {}),
    ("focalnet", "focalnet_tiny_srf", 64, {}), ("hiera", "hiera_tiny_224", 224, {}),
    ("eva", "eva02_tiny_patch14_224", 56, dict(img_size=56)), ("efficientvit_mit", "efficientvit_b0", 64, {}),
    ("efficientvit_msra", "efficientvit_m0", 224, {}), ("gcvit", "gcvit_xxtiny", 64, dict(img_size=64)),
    ("inception_next", "inception_next_atto", 64, {}), ("metaformer", "caformer_s18", 64, {}),
    ("mlp_mixer", "gmlp_ti16_224", 64, dict(img_size=64)), ("visformer", "visformer_tiny", 64, dict(img_size=64)),
    ("starnet", "starnet_s050", 64, {}), ("hgnet", "hgnetv2_b0", 64, {}), ("mambaout", "mambaout_femto", 64, {}),
    ("rdnet", "rdnet_tiny", 64, {}), ("shvit", "shvit_s1", 224, {}), ("fasternet", "fasternet_t0", 64, {}),
    ("vision_transformer_relpos", "vit_relpos_small_patch16_224", 64, dict(img_size=64)),
    ("vision_transformer_hybrid", "vit_tiny_r_s16_p8_224", 64, dict(img_size=64)),
    ("sequencer", "sequencer2d_s", 64, {}), ("convmixer", "convmixer_768_32", 64, {}),
]


def timm_specs():
    return [Spec("timm", f"timm {family}", name, kwargs, size) for family, name, size, kwargs in TIMM]


# --- transformers: small configurations of the architectures FiftyOne users load -----------

HF = [
    # (class, its config class, config arguments, input side, expect)
    ("ViTForImageClassification", "ViTConfig", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                                    intermediate_size=128, image_size=64, num_labels=5), 64, "maps"),
    ("DeiTForImageClassificationWithTeacher", "DeiTConfig", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                                                 intermediate_size=128, image_size=64, num_labels=5), 64, "maps"),
    ("BeitForImageClassification", "BeitConfig", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                                      intermediate_size=128, image_size=64, num_labels=5,
                                                      use_relative_position_bias=True), 64, "maps"),
    ("Dinov2WithRegistersForImageClassification", "Dinov2WithRegistersConfig",
     dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=56,
          patch_size=14, num_labels=5), 56, "maps"),
    ("SwinForImageClassification", "SwinConfig", dict(image_size=64, embed_dim=16, depths=[1, 1, 2, 1],
                                                      num_heads=[1, 1, 2, 2], window_size=2, num_labels=5), 64, "maps"),
    ("Swinv2ForImageClassification", "Swinv2Config", dict(image_size=64, embed_dim=16, depths=[1, 1, 2, 1],
                                                          num_heads=[1, 1, 2, 2], window_size=2, num_labels=5), 64, "maps"),
    ("ConvNextForImageClassification", "ConvNextConfig", dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                                              num_labels=5), 64, "maps"),
    ("ResNetForImageClassification", "ResNetConfig", dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                                          embedding_size=16, num_labels=5), 64, "maps"),
    ("PvtV2ForImageClassification", "PvtV2Config", dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                                        num_attention_heads=[1, 1, 2, 4], num_labels=5), 64, "maps"),
    ("MobileViTForImageClassification", "MobileViTConfig", dict(num_labels=5), 64, "maps"),
    ("SegformerForSemanticSegmentation", "SegformerConfig", dict(num_labels=5, depths=[1, 1, 1, 1],
                                                                 hidden_sizes=[16, 32, 64, 128], decoder_hidden_size=64,
                                                                 num_attention_heads=[1, 1, 2, 4]), 64, "maps"),
    ("MobileViTForSemanticSegmentation", "MobileViTConfig", dict(num_labels=5), 64, "maps"),
    ("DPTForSemanticSegmentation", "DPTConfig", dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=2,
                                                     intermediate_size=128, image_size=64, num_labels=5,
                                                     backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[16, 32, 64, 64],
                                                     fusion_hidden_size=32), 64, "maps"),
    ("UperNetForSemanticSegmentation", "UperNetConfig",
     dict(backbone_config=dict(model_type="convnext", hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                               out_features=["stage1", "stage2", "stage3", "stage4"]),
          hidden_size=32, use_auxiliary_head=False, num_labels=5), 64, "maps"),
    # detectors: every query an object (the transformers adapter, which the sweep's models pass through)
    ("DetrForObjectDetection", "DetrConfig", dict(use_pretrained_backbone=False, backbone="resnet18", d_model=32,
                                                  encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                                                  decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                                                  num_queries=10, num_labels=5), 64, "maps"),
    ("YolosForObjectDetection", "YolosConfig", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                    intermediate_size=64, image_size=[64, 64], patch_size=16,
                                                    num_detection_tokens=6, num_labels=5), 64, "maps"),
    ("RTDetrForObjectDetection", "RTDetrConfig",
     dict(backbone_config=dict(model_type="rt_detr_resnet", embedding_size=16, hidden_sizes=[16, 32, 64, 128],
                               depths=[1, 1, 1, 1], out_features=["stage2", "stage3", "stage4"]),
          use_pretrained_backbone=False, d_model=32, encoder_hidden_dim=32, encoder_in_channels=[32, 64, 128],
          feat_strides=[8, 16, 32], encoder_layers=1, encoder_ffn_dim=64, encoder_attention_heads=2, decoder_layers=1,
          decoder_ffn_dim=64, decoder_attention_heads=2, decoder_in_channels=[32, 32, 32], num_feature_levels=3,
          decoder_n_points=2, num_queries=10, num_denoising=0, num_labels=5), 64, "maps"),
]


def hf_specs():
    return [Spec("transformers", f"transformers {cls.split('For')[0]}", cls, dict(config=(config, kw)), size, expect)
            for cls, config, kw, size, expect in HF]


def specs():
    """Every model of the sweep, as :class:`Spec`."""
    return torchvision_specs() + timm_specs() + hf_specs()


def build(spec):
    """The model of a spec, random weights (seeded), in eval mode, none of
    them zero (:func:`without_zero_weights`)."""
    torch.manual_seed(0)
    if spec.source == "torchvision":
        from torchvision import models

        module = models.get_model(spec.name, weights=None, **spec.kwargs)
    elif spec.source == "timm":
        import timm

        module = timm.create_model(spec.name, pretrained=False, **spec.kwargs)
    else:
        import transformers

        config, kw = spec.kwargs["config"]
        module = getattr(transformers, spec.name)(getattr(transformers, config)(**kw))
    return without_zero_weights(module).eval()


def without_zero_weights(module):
    """``module`` with every weight initialised to zeros given what training
    would: a classifier head (torchvision's ViT) random values, a residual
    branch's last norm (LeViT, ResNets with ``zero_init_residual``) a scale of
    one. With them at zero every gradient is zero, or every token of a stage
    equal: no map can show anything."""
    with torch.no_grad():
        for m in module.modules():
            weight = getattr(m, "weight", None)
            if not isinstance(weight, torch.nn.Parameter) or weight.numel() <= 1 or weight.any():
                continue
            if weight.ndim == 1:
                weight.fill_(1.0)
            else:
                weight.normal_(0, 0.02)
    return module


def calibrated(module, spec, paths):
    """``module`` with its batch norms' statistics those of the photographs, as
    training leaves them statistics of real images: at their initial zero mean
    and unit variance the activations of some random networks vanish or are
    equal at every position (SSDLite, LeViT, MobileViT), and no map can show
    anything. One forward without gradients, every other module in eval mode."""
    from PIL import Image

    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return module
    t = transforms(spec)
    images = [Image.open(paths[name]).convert("RGB") for name in IMAGES]
    if t is None:  # a detector resizes inside: the photographs as they are
        from torchvision.transforms.functional import to_tensor

        x = [to_tensor(img) for img in images]
    else:
        x = torch.stack([t(img) for img in images])
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the batch
        m.train()
    try:
        with torch.no_grad():
            module(x)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
            m.eval()
    return module


def transforms(spec):
    """A small centre crop, normalised as ImageNet models expect; None for a
    detector (it takes the whole image and resizes it inside)."""
    if spec.family == "torchvision detection":
        return None
    from torchvision import transforms as T

    return T.Compose([T.Resize(spec.size), T.CenterCrop(spec.size), T.ToTensor(),
                      T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


def explain(spec, dataset, run_key, paths):
    """Runs ``compute_cams`` on ``dataset`` for one spec and checks what it stored.

    Returns:
        a JSON-ready dict: ``status`` (``"maps"``, ``"refused"``, or
        ``"error"`` with the ``error`` raised once the run started), ``kind``,
        ``suggested`` layers, ``methods`` (those whose maps showed something on
        every image), ``empty`` (the others), ``layers`` (how many can be
        explained), ``rejected`` (reason -> how many modules), ``reason`` and
        ``param`` of a refusal, ``seconds``

    Raises:
        AssertionError: a map of the wrong size or empty where it may not be,
            or a refusal after something was recorded
    """
    import cam_core

    started = time.perf_counter()
    row = dict(source=spec.source, family=spec.family, name=spec.name, size=spec.size)
    runs, schema = dataset.list_runs(), set(dataset.get_field_schema())
    try:
        module = calibrated(build(spec), spec, paths)
        row["build_seconds"] = round(time.perf_counter() - started, 2)
        if spec.source == "transformers":
            # the module itself, as a user passes it to compute_cams: its family's adapter reads it (a
            # detector's queries as objects, id2label as classes), the sweep's preprocessing as transforms
            description = cam_core.describe_model(module, transforms=transforms(spec))
        else:
            description = cam_core.describe_model(cam_core.CamModel(module, transforms(spec), None, spec.name))
        row.update(kind=description.kind, suggested=description.default_layers, layers=len(description.layers),
                   rejected=_reasons(description.probe.rejected))
        detector = dict(score_threshold=0.0, max_objects=2) if description.detector else {}
        res = cam_core.compute_cams(dataset, description, methods=METHODS, run_key=run_key, storage="inline",
                                    num_workers=0, device="cpu", batch_size=2, progress=False, **detector)
        row.update(status="maps", **_check_maps(spec, dataset, res, paths, description))
    except cam_core.CamArgumentError as e:
        # refused: nothing may have been recorded
        assert dataset.list_runs() == runs, f"{spec.name}: refused after a run was recorded"
        assert set(dataset.get_field_schema()) == schema, f"{spec.name}: refused after fields were declared"
        row.update(status="refused", param=e.param, reason=e.message)
    except AssertionError:
        raise
    except Exception as e:  # a failure once the run started, or a builder's: said, and the sweep goes on
        row.update(status="error", error=f"{type(e).__name__}: {e}")
    finally:
        if run_key in dataset.list_runs():
            dataset.delete_run(run_key)
    row["seconds"] = round(time.perf_counter() - started, 2)
    return row


def _check_maps(spec, dataset, res, paths, description):
    from PIL import Image

    from cam_core.media.geometry import apply_transforms, transform_steps
    from cam_core.media.mapfiles import load_map

    from cam_core.compute.plan import run_fields

    shown = {m: True for m in METHODS}
    method_of = {f: m for f, (m, _) in run_fields(res.key, METHODS, description.default_layers).items()}
    assert res.num_samples == len(IMAGES), f"{spec.name}: {res.num_samples} samples explained"
    for sample in dataset.select_fields(res.fields):
        name = next(n for n in IMAGES if paths[n] == sample.filepath)
        img = Image.open(paths[name]).convert("RGB")
        frame = apply_transforms(transform_steps(description.model.transforms), img)[1]
        w, h = frame.canvas_size()
        s = frame.map_scale()
        expected = (max(1, int(round(h * s))), max(1, int(round(w * s))))
        for fld in res.fields:
            heat = sample[fld]
            assert heat is not None, f"{spec.name}: no map in {fld} for {name}"
            cam = load_map(heat)
            assert cam.shape == expected, f"{spec.name}: {fld} of {name} is {cam.shape}, the image {expected}"
            assert np.isfinite(cam).all() and (np.asarray(heat.map) > 0).any()
            shown[method_of[fld]] &= bool(cam.max() > 0)
    for method in MUST_SHOW:
        assert shown[method], f"{spec.name}: {method} maps of layer {description.default_layers} are empty"
    return dict(methods=[m for m in METHODS if shown[m]], empty=[m for m in METHODS if not shown[m]])


def _reasons(rejected):
    """How many modules each kind of refusal concerns (the reason without its shapes)."""
    import re

    out = {}
    for reason in rejected.values():
        kind = re.sub(r"\([^)]*\)", "", reason).split(":")[0].split(" over the ")[0]
        kind = re.sub(r"\d+", "N", " ".join(kind.split()))
        out[kind] = out.get(kind, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
