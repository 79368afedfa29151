"""CAM runs on FiftyOne datasets, and what is done with them afterwards.

- :mod:`.record`: the declared run config, its results, cleanup and rename;
- :mod:`.sidebar`: the run's sidebar group, followed on delete and rename;
- :mod:`.appearance`: :func:`show_run`, the run's look in the App;
- :mod:`.rescore`: :func:`score_regions`, ground-truth scores from stored maps;
- :mod:`.views`: :func:`sort_by_score`;
- :mod:`.summary`: :func:`summarize_run`, pictures of a run.

The record's classes are stored by the path ``cam_core.runs.<class>``, so
they are importable from here.
"""
from .record import CamRun, CamRunConfig, CamRunResults, list_cam_runs, run_config

__all__ = [
    "CamRun",
    "CamRunConfig",
    "CamRunResults",
    "list_cam_runs",
    "run_config",
]
