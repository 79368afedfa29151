"""How a run looks in the App: its own sidebar group, and maps coloured by value.

With the App's default colour scheme (colour by field), a heatmap is drawn
in its field's single colour, which says little about where the map is
high. Colouring by value draws each map through the App's colorscale, so
the map is plain to see. Both settings are stored on the dataset
(``app_config``), so every App session of the dataset shows them without
the user setting anything.
"""
import fiftyone as fo

from ..errors import CamArgumentError
from .record import list_cam_runs, run_config
from .sidebar import group_name, run_groups


def show_run(samples, run_key, fields=None):
    """Gives a run the plugin's look in the App: its fields in their own
    sidebar group, their scores declared as filters, the dataset's labels
    coloured by value. The App's operator does this after every run; from
    Python, call it once after :func:`cam_core.compute_cams`.

    The group holds the heatmap fields (and a detector run's objects); the
    agreement values follow in a group named as their field
    (``cam_agreement``), where the App shows each by its own name. A new
    run's groups go after the other CAM runs' groups (or after ``labels``);
    a run shown again keeps its place. Deleting or renaming the run updates
    both.

    Args:
        samples: the run's dataset (or a view of it: its dataset is changed)
        run_key: a CAM run's key
        fields (None): the heatmap fields to show, in display order; default
            all of the run's
    """
    dataset = samples._root_dataset
    config = run_config(dataset, run_key)
    fields = list(config.fields) if fields is None else list(fields)
    unknown = [f for f in fields if f not in config.fields]
    if unknown:
        raise CamArgumentError("fields", f"{', '.join(unknown)} are not fields of run '{run_key}'; its fields: {', '.join(config.fields)}")
    agreement_field = config.agreement_field
    if agreement_field not in dataset.get_field_schema():
        agreement_field = None  # a run with one map per sample has no agreement

    # the maps' scores (target_label, peak, centroid_x, ...) and the agreement
    # values are stored as dynamic attributes: declared, they become sidebar filters
    parents = list(fields) + ([agreement_field] if agreement_field else [])
    dataset.add_dynamic_sample_fields(fields=parents)
    paths = list(fields)
    if config.detections_field and config.detections_field in dataset.get_field_schema():
        paths.append(config.detections_field)  # a detector run's objects, their scores as label filters
    agreement_paths = []
    if agreement_field:
        prefix = agreement_field + "."
        agreement_paths = sorted(p for p in dataset.get_field_schema(flat=True) if p.startswith(prefix))

    config = dataset.app_config
    groups = config.sidebar_groups or fo.DatasetAppConfig.default_sidebar_groups(dataset)
    own = run_groups(run_key, agreement_field)
    shown = [i for i, g in enumerate(groups) if g.name in own]
    groups = [g for g in groups if g.name not in own]
    for g in groups:
        g.paths = [p for p in g.paths if p not in paths + agreement_paths]
    if shown:  # shown before: where it was
        at = shown[0]
    else:  # after "labels" and the other runs' groups
        others = {n for key in list_cam_runs(dataset) for n in run_groups(key, run_config(dataset, key).agreement_field)}
        at = len(groups)
        for i, g in enumerate(groups):
            if g.name == "labels" or g.name in others:
                at = i + 1
    new = [fo.SidebarGroupDocument(name=group_name(run_key), paths=paths, expanded=True)]
    if agreement_paths:
        # a group named as the agreement field: the App shows each value by its
        # own name ("methods_layer4"), not by its whole path, which the sidebar cuts
        new.append(fo.SidebarGroupDocument(name=agreement_field, paths=agreement_paths, expanded=True))
    groups[at:at] = new
    config.sidebar_groups = groups

    scheme = config.color_scheme or fo.ColorScheme()
    scheme.color_by = "value"
    config.color_scheme = scheme
    dataset.save()
