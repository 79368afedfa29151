"""The plugin's operators: forms and parameter translation; all work is done by ``cam_core``.

Modules import ``cam_core`` (and so torch) inside functions only: FiftyOne
executes the plugin again for every operator registry it builds.
"""
from .compute import ComputeCams
from .objects import SortCamObjects
from .panel_grid import CamRunPanel
from .panel_modal import CamSamplePanel
from .register import RegisterCamModel, UnregisterCamModel
from .runs import DeleteCamRun, GetCamRun, ListCamRuns
from .scoring import ScoreCamRun
from .shards import ComputeCamShard, ResumeCamRun
from .summaries import SummarizeCamRun
from .views import SortByCamScore

OPERATORS = [
    ComputeCams,
    ScoreCamRun,
    SortByCamScore,
    SortCamObjects,
    SummarizeCamRun,
    ListCamRuns,
    GetCamRun,
    DeleteCamRun,
    ComputeCamShard,
    ResumeCamRun,
    RegisterCamModel,
    UnregisterCamModel,
]

# Python panels (``fiftyone.operators.Panel``): listed under ``panels:`` in fiftyone.yml
PANELS = [
    CamSamplePanel,
    CamRunPanel,
]
