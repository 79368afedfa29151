"""Why a sample got no map: each skip is a kind (one of the constants here)
and a message particular to the sample.

A run's results hold a list of skips as ``{"id", "filepath", "kind",
"reason"}``; :func:`skipped_reasons` counts them by kind.
"""
from collections import Counter
from dataclasses import dataclass

NOT_FOUND = "file not found"
UNREADABLE = "cannot read image"  # unreadable or corrupt, e.g. truncated
PREPROCESSING_FAILED = "preprocessing failed"  # a transform raised
BAD_TRANSFORM_OUTPUT = "transforms must return a (C, H, W) tensor"
NO_LABEL = "no label in field"  # the target field is empty for the sample
NO_OBJECT = "no object explained"  # a detector's image: no box passed the threshold, or none matched
NOT_FINITE = "model output not finite"  # NaN or infinite scores or maps: nothing true to store

KINDS = (NOT_FOUND, UNREADABLE, PREPROCESSING_FAILED, BAD_TRANSFORM_OUTPUT, NO_LABEL, NO_OBJECT, NOT_FINITE)


@dataclass(frozen=True)
class Skip:
    """Why one sample was skipped.

    Attributes:
        kind: one of :data:`KINDS`; for :data:`NO_LABEL`, the kind names the
            field (``"no label in field 'ground_truth'"``), which is the
            run's, not the sample's
        reason: the full message, e.g. ``"file not found: /data/a.jpg"``
    """

    kind: str
    reason: str


def no_label(field):
    """The skip of a sample whose target field ``field`` holds no label."""
    kind = f"{NO_LABEL} '{field}'"
    return Skip(kind, kind)


def no_object(why):
    """The skip of a detector's image whose maps explain no object (``why``:
    no box passed the threshold, or no ground-truth object matched a box)."""
    return Skip(NO_OBJECT, f"{NO_OBJECT}: {why}")


def not_finite(what):
    """The skip of a sample whose model output or maps hold NaN or infinity
    (``what``: which): its maps would be stored empty, its scores NaN."""
    return Skip(NOT_FINITE, f"{NOT_FINITE}: {what} hold NaN or infinity (e.g. an overflow or a division by zero in "
                            f"the model); no map can be true")


def skipped_reasons(results):
    """Counts a run's skipped samples by kind of reason.

    Args:
        results: a run's results (what :func:`cam_core.compute_cams` or
            ``dataset.load_run_results(run_key)`` return), or its ``skipped``
            list of ``{"id", "filepath", "kind", "reason"}`` dicts, or reason
            texts (records written before kinds were stored, or reasons from
            elsewhere: these count by the kind they start with, else by
            their text before the first ``": "``)

    Returns:
        a ``collections.Counter`` ``{kind: number of samples}``, kinds in the
        order first met (``.most_common()`` sorts them). The kinds are
        :data:`KINDS`, the no-label kind naming its field, e.g.
        ``Counter({"file not found": 2, "cannot read image": 1})``
    """
    skipped = getattr(results, "skipped", results) or []
    return Counter(_text_kind(s) if isinstance(s, str) else s.get("kind") or _text_kind(s["reason"]) for s in skipped)


def _text_kind(reason):
    for kind in KINDS:
        if reason.startswith(kind):
            return kind if kind != NO_LABEL else reason.split(": ", 1)[0]
    return reason.split(": ", 1)[0]
