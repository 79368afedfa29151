"""Pictures that summarise a run: mean heatmap per class, the most and least
on-object samples with their maps, histograms of the scores."""
import os

import fiftyone as fo
import numpy as np
from fiftyone import ViewField as F
from matplotlib.figure import Figure
from PIL import Image

from ..errors import CamArgumentError
from ..labels import check_classification_field
from ..media.images import load_rgb
from ..media.mapfiles import load_map
from ..scoring.names import HISTOGRAM_SCORES
from .rescore import explained_class
from .record import run_config
from .views import check_score, run_field

MAX_K = 50  # samples per half of the grid: more would not fit a picture
# the App draws heatmaps through its default colorscale, viridis: the pictures match it
COLORMAP = "viridis"


def default_summary_dir(dataset_name, run_key):
    """Where a run's summary pictures go unless the user says otherwise:
    ``<fo.config.default_dataset_dir>/cam_summaries/<dataset>/<run_key>``."""
    return os.path.join(fo.config.default_dataset_dir, "cam_summaries", dataset_name, run_key)


def summarize_run(samples, run_key, output_dir=None, field=None, score="mass_inside", k=5, label_field=None, size=96):
    """Saves three PNG pictures for one Heatmap field of a run.

    Args:
        samples: a dataset or view holding the run
        run_key: a CAM run's key
        output_dir (None): where the pictures are written (created if needed);
            default :func:`default_summary_dir`
        field (None): one of the run's Heatmap fields; default its first
        score ("mass_inside"): the score that ranks the samples of the grid
        k (5): samples in each half of the grid (highest and lowest score), 1 to 50
        label_field (None): an ``fo.Classification`` field shown as the label
        size (96): side of each thumbnail, in pixels

    Returns:
        ``{"mean_heatmaps": path, "extremes": path, "histograms": path}``
        (``extremes`` is None when no sample has the score)

    Raises:
        CamArgumentError: naming the refused parameter, before anything is written
    """
    field = check_summary_args(samples, run_key, field, score, k, label_field, size)
    output_dir = output_dir or default_summary_dir(samples._root_dataset.name, run_key)
    view = samples.exists(field)
    os.makedirs(output_dir, exist_ok=True)
    return {
        "mean_heatmaps": _mean_heatmaps(view, field, output_dir, size),
        "extremes": _extremes(view, field, score, k, label_field, output_dir, size),
        "histograms": _histograms(view, field, output_dir),
    }


def check_summary_args(samples, run_key, field=None, score="mass_inside", k=5, label_field=None, size=96):
    """Checks :func:`summarize_run`' arguments as it does, drawing nothing.

    Returns:
        the Heatmap field summarised (the run's first when ``field`` is None)

    Raises:
        CamArgumentError: naming the refused parameter
    """
    field = run_field(run_config(samples, run_key), run_key, field)
    check_score(score)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise CamArgumentError("k", f"the grid holds 1 to {MAX_K} samples per half; got {k!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise CamArgumentError("size", f"size must be a positive integer; got {size!r}")
    if label_field is not None:
        check_classification_field(samples, label_field, "label_field")
    if not samples.exists(field).count():
        raise CamArgumentError("field", f"no sample of this collection has a map in '{field}'")
    return field


def _resized(arr, size):
    img = Image.fromarray(np.uint8(np.clip(arr, 0, 1) * 255))
    return np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.float64) / 255


def _figure(rows, cols, width, height):
    # a Figure of its own, not pyplot's: the caller's matplotlib backend is left alone
    fig = Figure(figsize=(width * cols, height * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    return fig, axes


def _mean_heatmaps(view, field, output_dir, size):
    sums, counts = {}, {}
    for heat in view.values(field):
        label = str(explained_class(heat)[0] or "all objects")  # a detector's maps explain all of theirs
        cam = _resized(load_map(heat), size)
        sums[label] = sums.get(label, 0) + cam
        counts[label] = counts.get(label, 0) + 1
    labels = sorted(counts, key=lambda l: (-counts[l], l))[:16]
    cols = min(4, len(labels))
    rows = int(np.ceil(len(labels) / cols))
    fig, axes = _figure(rows, cols, 2.4, 2.6)
    for ax, label in zip(axes.ravel(), labels):
        ax.imshow(sums[label] / counts[label], cmap=COLORMAP, vmin=0, vmax=1)
        ax.set_title(f"{label} (n={counts[label]})", fontsize=9)
    fig.suptitle(f"mean heatmap per explained class: {field}", fontsize=10)
    path = os.path.join(output_dir, f"{field}_mean_heatmaps.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def extreme_samples(samples, field, score, k):
    """The samples with the highest and the lowest ``score`` of ``field``.

    With fewer than ``2 * k`` scored samples, the two halves split them
    (the highest half takes the odd one) instead of showing some twice.

    Returns:
        ``(highest, lowest)``: two views, highest and lowest score first
    """
    path = f"{field}.{score}"
    scored = samples.match(F(path) != None)  # noqa: E711 (MongoDB expression)
    n = len(scored)
    n_low = min(k, n // 2)
    return scored.sort_by(path, reverse=True).limit(min(k, n - n_low)), scored.sort_by(path).limit(n_low)


def _extremes(view, field, score, k, label_field, output_dir, size):
    high, low = extreme_samples(view, field, score, k)
    if not high:
        return None
    halves = [(f"highest {score}", list(high)), (f"lowest {score}", list(low))]
    rows = max(len(h[1]) for h in halves)
    fig, axes = _figure(rows, 4, 9 / 4, 2.4)
    for half, (title, samples) in enumerate(halves):
        for r, sample in enumerate(samples):
            heat = sample[field]
            img = np.asarray(load_rgb(sample.filepath).resize((size, size))) / 255
            cam = _resized(load_map(heat), size)
            label = sample[label_field].label if label_field and sample[label_field] is not None else "-"
            explained = explained_class(heat)[0] or f"{heat.get_field('num_objects')} objects"
            conf = f" {heat.target_confidence:.2f}" if heat.has_field("target_confidence") and heat.target_confidence is not None else ""
            ax_img, ax_cam = axes[r, 2 * half], axes[r, 2 * half + 1]
            ax_img.imshow(img)
            ax_img.set_title(f"label: {label}\nexplained: {explained}{conf}", fontsize=8)
            ax_cam.imshow(img)
            ax_cam.imshow(cam, cmap=COLORMAP, alpha=0.5, vmin=0, vmax=1)
            ax_cam.set_title(f"{score} = {heat[score]:.2f}" if isinstance(heat[score], float) else f"{score} = {heat[score]}", fontsize=8)
        if not samples:
            continue
        axes[0, 2 * half].annotate(title, (1.05, 1.35), xycoords="axes fraction", ha="center", fontsize=10, weight="bold")
    path = os.path.join(output_dir, f"{field}_extremes_{score}.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def _histograms(view, field, output_dir):
    present = []
    for name in HISTOGRAM_SCORES:
        values = [v for v in view.values(f"{field}.{name}") if v is not None]
        if values:
            present.append((name, np.asarray(values, dtype=float)))
    cols = min(4, max(1, len(present)))
    rows = max(1, int(np.ceil(len(present) / cols)))
    fig, axes = _figure(rows, cols, 3, 2.4)
    for ax, (name, values) in zip(axes.ravel(), present):
        ax.axis("on")
        ax.hist(values, bins=20, color="#3b6ea5")
        ax.set_title(f"{name} (n={len(values)})", fontsize=9)
    fig.suptitle(f"scores of {field}", fontsize=10)
    path = os.path.join(output_dir, f"{field}_histograms.png")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
