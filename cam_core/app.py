"""The data the App's CAM panels draw, computed by the database or from stored
maps: a run's score histogram and the view of a range of it, the mean map
per class, the methods x layers agreement, a sample's stored maps and
objects, the newest run. Usable from a notebook too (e.g. to plot a run).
"""
from .runs.histograms import latest_run, score_histogram, score_view
from .runs.stored import sample_maps, sample_objects, class_means, class_view, agreement_matrix

__all__ = [
    "latest_run",
    "score_histogram",
    "score_view",
    "sample_maps",
    "sample_objects",
    "class_means",
    "class_view",
    "agreement_matrix",
]
