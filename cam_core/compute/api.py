"""``compute_cams``: maps for every sample of a dataset or view, stored as
Heatmap fields; and the check of its arguments alone, for forms."""
import inspect
import time

from ..errors import CamArgumentTypeError
from . import checks, runner


def compute_cams(
    samples,
    model,
    layers=None,
    methods="gradcam",
    target="prediction",
    run_key="cam",
    transforms=None,
    classes=None,
    target_class=None,
    batch_size=16,
    num_workers=None,
    device="auto",
    output_dir=None,
    storage="png",
    overwrite=False,
    skip_existing=False,
    progress=None,
    gt_field=None,
    all_objects=True,
    iou_threshold=0.5,
    faithfulness=False,
    eigen_smooth=False,
    aug_smooth=False,
    score_threshold=0.5,
    max_objects=20,
    precision="fp32",
):
    """Computes class activation maps for every sample and stores each as an ``fo.Heatmap``.

    One field per (method, layer), named ``f"{run_key}_{method}_{layer}"`` with
    the layer path's dots replaced by underscores (FullGrad, which ignores
    layers: ``f"{run_key}_fullgrad"``). Maps line up with the original image:
    when preprocessing crops or pads, the map is placed back in the full frame
    (zero outside the crop). Each Heatmap carries ``target_index``,
    ``target_label``, ``target_score`` (the explained logit, or the class score
    summed over the region for segmenters), ``target_confidence`` (softmax,
    classifiers) and shape scores (``peak``, ``peak_x``, ``peak_y``,
    ``centroid_x``, ``centroid_y``, ``spread``, ``entropy``, ``border``).
    The call is recorded as a run (``samples.list_runs()``); ``delete_run``
    removes its fields and PNG files.

    Args:
        samples: a ``fo.Dataset`` or view of images
        model: a ``torch.nn.Module``, a FiftyOne ``TorchImageModel``, a
            :class:`cam_core.CamModel`, or a name such as
            ``"torchvision:resnet50"`` / ``"timm:deit_small_patch16_224"``
        layers (None): module paths as in ``model.named_modules()``; None for
            :func:`cam_core.default_layers`
        methods ("gradcam"): a name or list of names from
            :data:`cam_core.METHODS` (``"gradcam++"`` is accepted)
        target ("prediction"): what each map explains: ``"prediction"`` (top
            class; for segmenters the most frequent predicted class other than
            background, over its predicted region), ``"field:<name>"`` (an
            ``fo.Classification`` field mapped by class name, or for segmenters
            an ``fo.Segmentation`` field whose region is used), or a fixed class
            (name, index, or ``"class:<name>"``; for segmenters its predicted region);
            a zero-shot model (OpenCLIP, CLIP, SigLIP) also takes ``"text:<prompt>"``:
            any text as written, scored against the image by the model's text tower
        run_key ("cam"): the run's key and the fields' prefix
        transforms (None): PIL image -> (3, H, W) tensor; by default the
            model's own (torchvision weights, timm data config, zoo model)
        classes (None): class names for the model's outputs, if it has none;
            a zero-shot model's classes (each embedded as ``"a photo of a <name>"``,
            or FiftyOne's model's own prompt)
        target_class (None): with a ``fo.Segmentation`` target field, the class
            whose ground-truth region is explained (default: the most frequent
            non-background class of each mask)
        batch_size (16): images per forward/backward, or ``"auto"``: the
            largest batch that fits a memory budget (on CUDA 80% of the GPU's
            free memory, on the CPU half of the available RAM), measured on a
            first batch of two of the real images (a detector's per-object
            backwards included), then used for the rest of the run (at most
            512 images on CUDA, 64 elsewhere; 16 where memory cannot be
            measured, e.g. MPS). An integer is kept as given, except for
            detectors: their batches are split into sub-batches whose
            measured cost fits the same budget, so that a run cannot take a
            process (the App server) beyond the machine's memory
        num_workers (None): DataLoader worker processes decoding images while
            the model computes; None picks one per core beyond the one the
            model's thread needs (at most 4; 0 on one core or for a single batch)
        device ("auto"): a torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``,
            ``"mps"``), or ``"auto"``: CUDA when torch sees a GPU, else the CPU
        output_dir (None): where PNG maps are written; default
            ``<fo.config.default_dataset_dir>/cam_maps/<dataset>/<run_key>``
        storage ("png"): ``"png"`` (8-bit files, ``map_path``) or ``"inline"``
        overwrite (False): replace an existing run with this key
        skip_existing (False): continue an existing run with this key,
            computing only the samples still missing one of its fields
        progress (None): FiftyOne's progress option (bool, or a callback)
        gt_field (None): an ``fo.Detections``, ``fo.Polylines`` or
            ``fo.Segmentation`` field; each Heatmap then also gets
            ``mass_inside`` (share of the map's mass inside the objects),
            ``pointing_hit`` (the maximum lies inside an object) and ``iou``
            (the map thresholded at ``iou_threshold`` x its max against the
            objects), None where the sample has no such object
        all_objects (True): score against every object of ``gt_field``,
            whatever the map's target class: where the model looks compared
            with the objects in the image (a shortcut that makes the model
            predict a wrong class is then found, not dropped). False: only the
            objects of each map's target class (a sample with no object of
            its predicted class then gets None for the region scores)
        iou_threshold (0.5): the threshold, relative to the map's max, for ``iou``
        faithfulness (False): also compute ``road`` per Heatmap: grad-cam's ROAD
            confidence change when the least relevant 20% of pixels are removed
            minus when the most relevant 20% are (halved, as ``ROADCombined``);
            two extra forwards per map and batch
        eigen_smooth (False): grad-cam's ``eigen_smooth``: each map is the first
            principal component of the weighted activations instead of their
            sum (the FiftyOne GradCAM notebook's setting; eigen methods,
            KPCA-CAM and FEM are unchanged by it)
        aug_smooth (False): grad-cam's ``aug_smooth``: each map is the mean of
            the maps of six augmented copies (flipped, brightness x 0.9 / 1 /
            1.1), all explaining the image's own target, computed in the
            same one forward and one backward (of six times the images:
            lower ``batch_size`` to keep memory the same)

        score_threshold (0.5): a detector's boxes explained (``target``
            ``"prediction"`` or a class): those of at least this score
        max_objects (20): the most objects explained per image (a detector:
            one backward per object rank, shared by the batch's images)
        precision ("fp32"): ``"fp32"``, ``"bf16"`` or ``"fp16"``: the
            forward and backward run under ``torch.autocast`` in that type,
            the maps are computed in fp32 from its activations and gradients;
            fp16 scales the loss so that small gradients do not underflow.
            bf16 suits CPUs and recent GPUs; fp16 runs on the CPU too but
            slowly (its kernels are meant for GPUs). ScoreCAM's and
            AblationCAM's extra forwards and ShapleyCAM's second-order pass
            run in fp32. Recorded on the run: a continuation keeps it. Maps differ
            from fp32's by the reduced precision (see the equivalence tests
            for the tolerances checked)

    Detectors (torchvision's Faster R-CNN, RetinaNet, FCOS, SSD, or any module
    returning one mapping of ``boxes``, ``labels``, ``scores`` per image: see
    :mod:`cam_core.engine.detection`): ``target`` is ``"prediction"`` (each box
    of score >= ``score_threshold``), ``"field:<Detections field>"`` (each
    object, matched to the detector's boxes by IoU > 0.5 and label, as
    grad-cam's ``FasterRCNNBoxScoreTarget``) or a class (its boxes above the
    threshold). Each Heatmap explains all of a sample's objects together (and
    carries ``num_objects`` instead of ``target_*``); the field
    ``f"{run_key}_detections"`` holds the explained objects, each with the
    scores of its own map as attributes ``f"{method}_{layer}_{score}"``:
    ``inside`` (share of the map's mass in its box), ``on_others`` (in the
    other explained objects' boxes), ``background`` (outside every box),
    ``peak_inside``; copies of ground-truth objects carry ``gt_id``.
    Methods: those computed from activations and gradients (GradCAM and its
    variants, EigenCAM, EigenGradCAM).

    With several methods or layers, the sample field ``f"{run_key}_agreement"``
    holds the mean Pearson correlation between the maps of the methods for each
    layer (``methods_<layer>``) and between the layers for each method
    (``layers_<method>``).

    Returns:
        a :class:`cam_core.runs.CamRunResults` with ``num_samples``,
        ``num_skipped``, ``skipped`` and ``fields``; its ``summary()`` is
        also logged (logger ``cam_core.compute.runner``, level INFO)

    Raises:
        CamArgumentError: (a ``ValueError``; a ``TypeError`` too for a wrong
            type) naming the refused parameter, before anything is computed
            or written; :func:`check_compute_args` makes the same checks alone
    """
    arguments = dict(locals())  # every parameter, as passed
    started = time.time()
    progress = arguments.pop("progress")
    return runner.run(checks.settle(arguments), progress, started)


def check_compute_args(samples, model, **kwargs):
    """Checks arguments of :func:`compute_cams` exactly as it does, without
    computing or writing anything: for a form, or before queueing work.

    Args:
        samples: as for :func:`compute_cams`
        model: as for :func:`compute_cams`, or a
            :class:`cam_core.types.ModelDescription` (a model probed already)
        **kwargs: :func:`compute_cams`' other arguments

    Returns:
        the settled :class:`cam_core.compute.plan.Plan` (``fields``,
        ``layers``, ``output_dir``, ...)

    Raises:
        CamArgumentError: naming the first refused parameter (``param``) and
            saying why (``message``)
    """
    try:
        bound = _SIGNATURE.bind(samples, model, **kwargs)
    except TypeError as e:
        raise CamArgumentTypeError(_unknown_keyword(kwargs), f"compute_cams does not take these arguments: {e}") from None
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments.pop("progress")
    return checks.settle(arguments)


_SIGNATURE = inspect.signature(compute_cams)


def parameters():
    """``{name: default}`` of :func:`compute_cams`' keyword parameters, in
    order: what a form or a wrapper may pass on."""
    return {n: p.default for n, p in _SIGNATURE.parameters.items() if p.default is not inspect.Parameter.empty}


def _unknown_keyword(kwargs):
    names = [k for k in kwargs if k not in _SIGNATURE.parameters]
    return names[0] if names else "samples"
