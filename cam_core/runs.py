"""CAM runs recorded on a dataset, so they can be listed, inspected and deleted.

These classes are found by their absolute name (``cam_core.runs.CamRunConfig``)
when FiftyOne loads a run, so ``delete_run`` works from any process that can
import ``cam_core``.
"""
from collections import Counter

import fiftyone.core.runs as fors

from . import appearance
from .data import BAD_TRANSFORM_OUTPUT, PREPROCESSING_FAILED
from .images import NOT_FOUND, UNREADABLE
from .storage import remove_map_files

# "no label in field 'ground_truth'": the field is the run's, not the sample's
NO_LABEL = "no label in field"


class CamRunConfig(fors.RunConfig):
    """The settings of one :func:`cam_core.compute_cams` call.

    Attributes (all JSON): ``model``, ``model_kwargs``, ``layers``, ``methods``,
    ``target``, ``target_class``, ``transforms``, ``classes``, ``storage``,
    ``output_dir``, ``fields`` (``{field: [method, layer]}``), ``versions``.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("method", "cam")
        super().__init__(**kwargs)


class CamRun(fors.Run):
    """Cleans up a CAM run: its Heatmap fields, their PNG files and its
    sidebar group; a rename renames them."""

    def get_fields(self, samples, key):
        """The run's Heatmap fields and its agreement field."""
        agreement = getattr(self.config, "agreement_field", None)
        return list(getattr(self.config, "fields", {}) or {}) + ([agreement] if agreement else [])

    def cleanup(self, samples, key):
        dataset = samples._root_dataset
        schema = dataset.get_field_schema()
        heatmaps = set(getattr(self.config, "fields", {}) or {})
        for field in self.get_fields(samples, key):
            if field not in schema:
                continue
            if field in heatmaps:
                remove_map_files(dataset.values(f"{field}.map_path"))
            dataset.delete_sample_field(field)
        appearance.forget_run(dataset, key)

    def rename(self, samples, key, new_key):
        dataset = samples._root_dataset
        renamed = {f: new_key + f[len(key) :] for f in self.get_fields(samples, key) if f.startswith(key + "_")}
        present = dataset.get_field_schema()
        dataset.rename_sample_fields({f: n for f, n in renamed.items() if f in present})
        self.config.fields = {renamed.get(f, f): v for f, v in self.config.fields.items()}
        if getattr(self.config, "agreement_field", None):
            self.config.agreement_field = renamed.get(self.config.agreement_field)
        fors.Run.update_run_config(samples, key, self.config)
        appearance.rename_run(dataset, key, new_key, renamed)


class CamRunResults(fors.RunResults):
    """What a run did: ``num_samples`` explained, ``num_skipped`` and
    ``skipped`` (a list of ``{"id", "filepath", "reason"}``), ``seconds``."""

    def skipped_reasons(self):
        """The skipped samples counted by kind of reason: :func:`skipped_reasons`."""
        return skipped_reasons(self)


def skipped_reasons(results):
    """Counts a run's skipped samples by kind of reason, leaving out what is
    particular to each sample (its path, the decoder's message).

    Args:
        results: a run's results (what :func:`cam_core.compute_cams` or
            ``dataset.load_run_results(run_key)`` return), or its ``skipped``
            list of ``{"id", "filepath", "reason"}`` dicts, or reason strings

    Returns:
        a ``collections.Counter`` ``{kind: number of samples}``, kinds in the
        order first met (``.most_common()`` sorts them). The kinds:
        ``"file not found"``, ``"cannot read image"`` (unreadable or corrupt,
        e.g. truncated), ``"preprocessing failed"`` (a transform raised),
        ``"transforms must return a (C, H, W) tensor"`` and
        ``"no label in field '<field>'"``; any other reason counts by its text
        before the first ``": "``. E.g. ``Counter({"file not found": 2,
        "cannot read image": 1})``
    """
    skipped = getattr(results, "skipped", results) or []
    return Counter(_reason_kind(s if isinstance(s, str) else s["reason"]) for s in skipped)


def _reason_kind(reason):
    # "file not found: /a.jpg" and "file not found: /b.jpg" are one reason
    for kind in (NOT_FOUND, UNREADABLE, PREPROCESSING_FAILED, BAD_TRANSFORM_OUTPUT):
        if reason.startswith(kind):
            return kind
    if reason.startswith(NO_LABEL):
        return reason
    return reason.split(": ", 1)[0]


def list_cam_runs(samples):
    """Keys of the CAM runs on a collection (other run types are left out)."""
    keys = []
    for key in samples.list_runs():
        try:
            config = samples.get_run_info(key).config
        except Exception:  # a run whose config class cannot be loaded here
            continue
        if isinstance(config, CamRunConfig):
            keys.append(key)
    return keys
