"""The plugin's operators: forms and parameter translation; all work is done by ``cam_core``.

Modules import ``cam_core`` (and so torch) inside functions only: FiftyOne
executes the plugin again for every operator registry it builds.
"""
from .compute import ComputeCams
from .register import RegisterCamModel, UnregisterCamModel
from .runs import DeleteCamRun, GetCamRun, ListCamRuns

OPERATORS = [
    ComputeCams,
    ListCamRuns,
    GetCamRun,
    DeleteCamRun,
    RegisterCamModel,
    UnregisterCamModel,
]
