"""What continuing a run (``skip_existing=True``) must keep the same: every
setting that gives its maps and their scores their meaning. One run whose
samples were explained by two models, targets or preprocessings would say
one thing in its config and hold another."""
import json
import re

from ..errors import CamArgumentError

# (the recorded setting, the parameter that sets it)
KEPT = [
    ("model", "model"), ("model_kwargs", "model"), ("transforms", "transforms"),
    ("default_transforms", "transforms"), ("classes", "classes"), ("target", "target"),
    ("target_class", "target_class"), ("eigen_smooth", "eigen_smooth"), ("aug_smooth", "aug_smooth"),
    ("gt_field", "gt_field"), ("all_objects", "all_objects"), ("iou_threshold", "iou_threshold"),
    ("faithfulness", "faithfulness"), ("score_threshold", "score_threshold"), ("max_objects", "max_objects"),
    ("precision", "precision"),
]
# settings recorded only by later versions: a run recorded without them is not refused for them
LATER = {"score_threshold", "max_objects", "precision"}


def check_continuation(run_key, old, new):
    """Refuses to continue run ``run_key`` (recorded config ``old``) with
    settings that give another config (``new``).

    Raises:
        CamArgumentError: naming the parameter, with the recorded value and the new one
    """
    for name, param in KEPT:
        was, now = _plain(getattr(old, name, None)), _plain(getattr(new, name, None))
        if was == now or (name in LATER and was is None):
            continue
        raise CamArgumentError(
            param, f"run '{run_key}' was computed with {name}={_short(was)}; these settings give "
                   f"{name}={_short(now)}. Continue it (skip_existing=True) with the same {param}, or start it "
                   f"again (overwrite=True) or under another run_key")


def _plain(value):
    """A value as recorded (JSON: tuples are lists), with the addresses of
    objects that have no repr of their own left out (they differ per process)."""
    value = json.loads(json.dumps(value, default=str))
    if isinstance(value, str):
        value = re.sub(r" at 0x[0-9a-fA-F]+", "", value)
    return value


def _short(value, limit=300):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
