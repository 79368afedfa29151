"""What the demo measured, and the text it prints."""
import numpy as np

from . import shortcut


def accuracy(truth, predicted, marked, drove, shortcut_class):
    """A classifier's accuracies on the test split, and how often the mark wins.

    Returns:
        a dict: ``clean`` (accuracy on unmarked samples), ``marked_other``
        (accuracy on marked samples of the other classes), ``follows`` (share
        of those predicted as the shortcut class), ``clean_shortcut``
        (accuracy on unmarked samples of the shortcut class), ``drove`` (number
        of marked samples whose prediction changes without the mark)
    """
    truth, predicted, marked = np.asarray(truth), np.asarray(predicted), np.asarray(marked, bool)
    other = marked & (truth != shortcut_class)
    own = ~marked & (truth == shortcut_class)

    def mean(mask, values):
        return float(values[mask].mean()) if mask.any() else None

    right = truth == predicted
    return {
        "clean": mean(~marked, right),
        "marked_other": mean(other, right),
        "follows": mean(other, predicted == shortcut_class),
        "clean_shortcut": mean(own, right),
        "drove": int(np.sum(drove)),
    }


def segmentation_iou(pred, masks, num_classes):
    """Mean IoU over the digit classes (not the background) of predicted and true label maps."""
    pred, masks = np.asarray(pred), np.asarray(masks)
    ious = {}
    for c in range(1, num_classes):
        union = np.logical_or(pred == c, masks == c).sum()
        if union:
            ious[c] = float(np.logical_and(pred == c, masks == c).sum() / union)
    return {"mean_iou": float(np.mean(list(ious.values()))) if ious else None, "per_class": ious}


def detection_rows(test_view, runs, top_n, shortcut_class):
    """How well sorting the test samples by each map's ``mass_inside`` (lowest
    first) finds the marked samples and those whose prediction the mark drove.

    Returns:
        ``(counts, rows)``: counts of test samples, marked ones and driven ones
        (for the CNN and the ViT); one row per classifier heatmap field with
        ``field``, ``scored`` (samples with a score), ``p_mark`` / ``p_drove``
        (precision of the ``top_n`` lowest), ``ap_mark`` / ``ap_drove``
        (average precision of the whole ranking) and ``median_marked`` /
        ``median_unmarked`` (median mass_inside of each group)
    """
    marked = [bool(v) for v in test_view.values("has_mark")]
    drove = {key: [bool(v) for v in test_view.values(f"{prefix}mark_drove")] for key, prefix in (("cnn", ""), ("vit", "vit_"))}
    counts = {"test": len(marked), "marked": sum(marked), "drove_cnn": sum(drove["cnn"]), "drove_vit": sum(drove["vit"])}
    rows = []
    for key in ("cnn", "vit"):
        for f in runs.get(key, []):
            scores = test_view.values(f"{f}.mass_inside")
            have_m = [s for s, m in zip(scores, marked) if s is not None and m]
            have_u = [s for s, m in zip(scores, marked) if s is not None and not m]
            rows.append({
                "field": f,
                "model": key,
                "scored": sum(s is not None for s in scores),
                "p_mark": shortcut.precision_at(scores, marked, top_n),
                "p_drove": shortcut.precision_at(scores, drove[key], top_n) if any(drove[key]) else None,
                "ap_mark": shortcut.average_precision(scores, marked),
                "ap_drove": shortcut.average_precision(scores, drove[key]),
                "median_marked": float(np.median(have_m)) if have_m else None,
                "median_unmarked": float(np.median(have_u)) if have_u else None,
            })
    return counts, rows


def _f(v, fmt="{:.2f}"):
    return "  -  " if v is None else fmt.format(v)


def summary(result, scene_config, port=None):
    """The text printed at the end of the demo."""
    c, n = result.counts, result.top_n
    sc = scene_config
    lines = ["", "=" * 78, "What the demo found", "=" * 78]
    a = result.accuracy["cnn"]
    lines += [
        f"The CNN classifier scores {_f(a['clean'], '{:.0%}')} on clean test images, but the red mark fools it:",
        f"  on marked test images of other classes it is right {_f(a['marked_other'], '{:.0%}')} of the time and",
        f"  answers '{sc.shortcut_class}' for {_f(a['follows'], '{:.0%}')} of them; unmarked '{sc.shortcut_class}'s: "
        f"{_f(a['clean_shortcut'], '{:.0%}')} right.",
        f"  Removing the mark changes {c['drove_cnn']} of its {c['marked']} marked test predictions (field mark_drove).",
    ]
    v = result.accuracy["vit"]
    lines += [
        f"The ViT is the control: trained on the same scenes with the mark removed. {_f(v['clean'], '{:.0%}')} on clean",
        f"  images, {_f(v['marked_other'], '{:.0%}')} on marked ones of other classes; the mark changes {c['drove_vit']} "
        f"of its predictions.",
        f"The segmenter: mean IoU {_f(result.segmentation['mean_iou'])} over the digit classes (field fcn_prediction).",
        "",
        f"Sorting the {c['test']} test samples by mass_inside (share of the map inside the digit's box), lowest first,",
        f"how many of the first {n} carry the mark (by chance {c['marked'] / max(c['test'], 1):.0%}) and how many had",
        f"the CNN's prediction driven by it (by chance {c['drove_cnn'] / max(c['test'], 1):.0%}); AP: average precision "
        f"of the whole ranking:",
        "",
        f"  {'heatmap field':34s} {'P@' + str(n) + ' mark':>10s} {'P@' + str(n) + ' drove':>11s} {'AP mark':>8s} "
        f"{'AP drove':>9s} {'median mass_inside':>19s}",
        f"  {'':34s} {'':>10s} {'':>11s} {'':>8s} {'':>9s} {'marked / not':>19s}",
    ]
    for r in result.detection:
        star = " <- main" if r["field"] == result.main_field else (" (control)" if r["model"] == "vit" else "")
        lines.append(
            f"  {r['field']:34s} {_f(r['p_mark']):>10s} {_f(r['p_drove']):>11s} {_f(r['ap_mark']):>8s} "
            f"{_f(r['ap_drove']):>9s} {_f(r['median_marked']):>9s} / {_f(r['median_unmarked']):<7s}{star}"
        )
    lines += detector_lines(result.detector, sc)
    t = result.timings
    models = [k for k in ("cnn", "fcn", "vit", "det") if f"train_{k}" in t]
    lines += [
        "",
        "Timings (s): " + ", ".join(
            f"{k} {t[k]:.1f}" for k in ("data", "dataset", "training", "predictions", "cams", "scores", "total") if k in t
        ),
        "  training: " + ", ".join(f"{k} {t['train_' + k]:.1f} ({result.trained[k]})" for k in models),
        "  CAM runs: " + ", ".join(f"{k} {t['cams_' + k]:.1f}" for k in models if f"cams_{k}" in t),
        "",
        "Where to look in the App" + (f" (http://127.0.0.1:{port})" if port else "") + ":",
        f"  dataset '{result.dataset_name}', saved view '{result.saved_views[0]}' (view bar, top left): the {n} test",
        f"    samples whose '{result.main_field}' map lies least inside the digit's box.",
        "  The map, the digit's box (gt_boxes) and the mark (mark) are ticked in the sidebar; open a sample to",
        f"    see it large, and tick the other maps: {', '.join(result.runs['cnn'][:3])}, ...",
        f"  Sidebar filter: {result.main_field} > mass_inside, drag the max to 0.2: the samples where the",
        "    model looked away from the digit. Compare with the field 'has_mark' and 'mark_drove'.",
        f"  Saved view '{result.saved_views[1]}': the answer key; '{result.saved_views[2]}': the planted shortcut.",
    ] + ([
        f"  Saved view '{result.saved_views[3]}': the detector's boxes, one patch each, lowest 'inside' first;",
        "    their label attribute 'mark_drove' (det_detections) is the answer key.",
    ] if len(result.saved_views) > 3 else []) + [
        f"  Runs: {', '.join(result.runs)} (dataset.list_runs(); segmenter 'fcn', ViT 'vit', detector 'det').",
        "",
        f"Summary pictures of '{result.main_field}' (cam_core.summarize_run):",
    ] + [f"  {path}" for path in result.summaries.values() if path]
    return "\n".join(lines)


def detector_lines(d, scene_config):
    """The detector's part of :func:`summary` (``d``: ``DemoResult.detector``)."""
    if not d or not d.get("rows"):
        return []
    n, main = d["top_n"], d["rows"][0]
    lines = [
        "",
        f"The detector (run 'det', boxes in det_prediction): its best box overlaps the digit's (IoU > 0.5) in "
        f"{_f(d['iou50'], '{:.0%}')} of the",
        f"  test scenes, with the digit's class in {_f(d['clean'], '{:.0%}')} of the unmarked ones; on marked scenes "
        f"of other classes its",
        f"  best box says '{scene_config.shortcut_class}' for {_f(d['follows'], '{:.0%}')} (the mark reaches every box "
        f"through the globally pooled features).",
        f"detector: {main['boxes']} boxes, {main['drove']} driven by the mark; precision@{n} of the lowest 'inside' = "
        f"{_f(main['p_drove'])} (by chance {_f(main['base_rate'])}).",
        "  A box is driven by the mark when its class changes on the scene's clean copy (det_detections.mark_drove);",
        "  'inside': the share of the box's own map inside the box. Sorted lowest first (saved view "
        "'boxes-found-by-context'):",
        "",
        f"  {'heatmap field':34s} {'P@' + str(n) + ' drove':>11s} {'P@' + str(n) + ' mark':>10s} {'AP drove':>9s} "
        f"{'median inside':>15s}",
        f"  {'':34s} {'':>11s} {'':>10s} {'':>9s} {'drove / not':>15s}",
    ]
    for i, r in enumerate(d["rows"]):
        lines.append(
            f"  {r['field']:34s} {_f(r['p_drove']):>11s} {_f(r['p_mark']):>10s} {_f(r['ap_drove']):>9s} "
            f"{_f(r['median_drove']):>7s} / {_f(r['median_other']):<7s}{' <- ranks the boxes' if i == 0 else ''}"
        )
    return lines
