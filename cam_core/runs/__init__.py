"""CAM runs on FiftyOne datasets, and what is done with them afterwards.

- :mod:`.record`: the declared run config, its results, cleanup and rename;
- :mod:`.sidebar`: the run's sidebar group, followed on delete and rename;
- :mod:`.appearance`: :func:`show_run`, the run's look in the App;
- :mod:`.rescore`: :func:`score_regions`, ground-truth scores from stored maps;
- :mod:`.views`: :func:`sort_by_score`;
- :mod:`.objects`: :func:`sort_objects_by_score`, a detector run's objects as sorted patches;
- :mod:`.summary`: :func:`summarize_run`, pictures of a run;
- :mod:`.state`: the live state of a run in the database, the atomic claim of its key;
- :mod:`.usage`: :func:`saved_views_using`, what a run's deletion leaves empty;
- :mod:`.orphans`: :func:`remove_orphaned_maps`, the maps of deleted datasets;
- :mod:`.owner`: the markers that prove which map files are this database's to delete;
- :mod:`.fields`: fields added to a dataset's schema by updates that only add;
- :mod:`.results`: a run's results saved from its state, repaired after a crash.

The record's classes are stored by the path ``cam_core.runs.<class>``, so
they are importable from here.
"""
from .record import CamRun, CamRunConfig, CamRunResults, list_cam_runs, run_config
from .shards import run_status
from .state import RunStatus

__all__ = [
    "CamRun",
    "CamRunConfig",
    "CamRunResults",
    "list_cam_runs",
    "run_config",
    "run_status",
    "RunStatus",
]
