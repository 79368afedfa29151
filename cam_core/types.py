"""The types and tables a user may meet or inspect: what a run records
(:class:`CamRunConfig`, :class:`CamRunResults`), its live state
(:class:`RunStatus`), a probed model (:class:`ModelDescription`,
:class:`LayerInfo`), an on-demand explanation (:class:`Explanation`), what
orphaned maps were found (:class:`OrphanedMaps`), the score and method names.
"""
from .errors import CamArgumentTypeError
from .models.describe import ModelDescription
from .engine.layers import LayerInfo
from .runs.record import CamRunConfig, CamRunResults
from .runs.state import RunStatus
from .runs.orphans import OrphanedMaps
from .compute.explanation import Explanation
from .engine.methods import ALIASES
from .scoring.names import SCORES, DETECTION_SCORES, MASK_SCORES

__all__ = [
    "CamArgumentTypeError",
    "ModelDescription",
    "LayerInfo",
    "CamRunConfig",
    "CamRunResults",
    "RunStatus",
    "OrphanedMaps",
    "Explanation",
    "ALIASES",
    "SCORES",
    "DETECTION_SCORES",
    "MASK_SCORES",
]
