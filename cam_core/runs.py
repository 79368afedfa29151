"""CAM runs recorded on a dataset, so they can be listed, inspected and deleted.

These classes are found by their absolute name (``cam_core.runs.CamRunConfig``)
when FiftyOne loads a run, so ``delete_run`` works from any process that can
import ``cam_core``.
"""
import fiftyone.core.runs as fors

from .storage import remove_map_files


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
    """Cleans up a CAM run: its Heatmap fields and their PNG files."""

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

    def rename(self, samples, key, new_key):
        dataset = samples._root_dataset
        renamed = {f: new_key + f[len(key) :] for f in self.get_fields(samples, key) if f.startswith(key + "_")}
        present = dataset.get_field_schema()
        dataset.rename_sample_fields({f: n for f, n in renamed.items() if f in present})
        self.config.fields = {renamed.get(f, f): v for f, v in self.config.fields.items()}
        if getattr(self.config, "agreement_field", None):
            self.config.agreement_field = renamed.get(self.config.agreement_field)
        fors.Run.update_run_config(samples, key, self.config)


class CamRunResults(fors.RunResults):
    """What a run did: ``num_samples`` explained, ``num_skipped`` and
    ``skipped`` (a list of ``{"id", "filepath", "reason"}``), ``seconds``."""


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
