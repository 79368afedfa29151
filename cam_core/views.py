"""Views of a run's samples ordered by a heatmap score."""
from .evaluate import run_config

SCORES = ("mass_inside", "pointing_hit", "iou", "road", "peak", "peak_x", "peak_y", "centroid_x",
          "centroid_y", "spread", "entropy", "border", "target_confidence")


def sort_by_score(samples, run_key, score="mass_inside", field=None, min_value=None, max_value=None,
                  reverse=False, correct_field=None):
    """Samples of a run sorted by one score of one Heatmap field.

    For example, correct predictions where the model looked outside the
    object, least on-object first::

        cam_core.sort_by_score(dataset, "cam", "mass_inside", max_value=0.3, correct_field="ground_truth")

    Args:
        samples: a dataset or view holding the run
        run_key: a CAM run's key
        score ("mass_inside"): a Heatmap attribute (see :data:`SCORES`)
        field (None): one of the run's Heatmap fields; default its first
        min_value / max_value (None): keep samples whose score is within these bounds
        reverse (False): highest first
        correct_field (None): an ``fo.Classification`` field: keep samples whose
            map's ``target_label`` equals its label (correct predictions when the
            run's target is the prediction)

    Returns:
        a ``DatasetView`` without the samples that have no such score
    """
    from fiftyone import ViewField as F

    config = run_config(samples, run_key)
    fields = list(config.fields)
    field = field or fields[0]
    if field not in fields:
        raise ValueError(f"field '{field}' is not a field of run '{run_key}'; its fields: {', '.join(fields)}")
    if score not in SCORES:
        raise ValueError(f"unknown score '{score}'; scores: {', '.join(SCORES)}")
    path = f"{field}.{score}"
    view = samples.match(F(path) != None)  # noqa: E711 (a MongoDB expression, not a Python test)
    if min_value is not None:
        view = view.match(F(path) >= min_value)
    if max_value is not None:
        view = view.match(F(path) <= max_value)
    if correct_field is not None:
        if correct_field not in samples.get_field_schema():
            raise ValueError(f"correct_field '{correct_field}' does not exist")
        view = view.match(F(f"{field}.target_label") == F(f"{correct_field}.label"))
    return view.sort_by(path, reverse=reverse)
