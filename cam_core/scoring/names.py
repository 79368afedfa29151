"""The names of the scores stored on every map: each is defined here once.

- target: what the map explains (``target_confidence`` is the one that sorts);
- shape: where the map's mass lies (:func:`cam_core.scoring.shape_scores`);
- region: against the ground-truth objects (:func:`cam_core.scoring.region_scores`);
- faithfulness: grad-cam's ROAD (:func:`cam_core.scoring.road.road_scores`).
"""

TARGET_ATTRIBUTES = ("target_index", "target_label", "target_score", "target_confidence")
SHAPE_SCORES = ("peak", "peak_x", "peak_y", "centroid_x", "centroid_y", "spread", "entropy", "border")
REGION_SCORES = ("mass_inside", "pointing_hit", "iou")
FAITHFULNESS_SCORES = ("road",)
# a detector's explained objects: each one's scores from its own map (cam_core.scoring.boxes.object_scores)
DETECTION_SCORES = ("inside", "on_others", "background", "peak_inside")
# and for a detector that gives instance masks, the same against each object's mask
MASK_SCORES = ("mask_inside", "mask_on_others")


def object_attribute(run_key, field, score):
    """The attribute of an explained object holding one score of one of the
    run's maps: ``gradcam_backbone_body_layer4_inside`` for the Heatmap field
    ``cam_gradcam_backbone_body_layer4`` of run ``cam`` (the field without the run key)."""
    return f"{field[len(run_key) + 1:]}_{score}"


# a detector's sample map explains all its objects together: how many
NUM_OBJECTS = "num_objects"
# a map shrunk to a bounded size records by how much (cam_core.media.geometry.Frame.map_scale)
MAP_SCALE = "map_scale"
# a map with no mass (all zeros where the model saw the image), so the sidebar can find them
EMPTY = "empty"

# the type of each attribute, so a run declares them before its first write; the rest are floats
TYPES = {"target_index": int, "target_label": str, "pointing_hit": bool, "empty": bool, "peak_inside": bool,
         "num_objects": int}

# every score a view can sort by or a form can offer, ground-truth scores first
SCORES = REGION_SCORES + FAITHFULNESS_SCORES + SHAPE_SCORES + ("target_confidence",)

# positions describe where, not how much: no histogram of them says anything
POSITION_SCORES = ("peak", "peak_x", "peak_y", "centroid_x", "centroid_y")
HISTOGRAM_SCORES = tuple(s for s in SCORES if s not in POSITION_SCORES)
