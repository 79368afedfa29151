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
from ..scoring.names import EMPTY
from .record import list_cam_runs, run_config
from .sidebar import group_name, run_groups


def show_run(samples, run_key, fields=None):
    """Gives a run the plugin's look in the App: its fields in their own
    sidebar group, their scores declared as filters, the dataset's labels
    coloured by value. The App's operator does this after every run, and
    the worker that completes a run's last shard after a run queued as jobs;
    from Python, call it once after :func:`cam_core.compute_cams`.

    The group holds the heatmap fields, then each one's ``empty`` flag
    (``cam_gradcam_layer4.empty``: tick ``True`` to see the samples whose map
    has no mass, which the App would draw like a weak one), then a detector
    run's objects. The agreement values follow in a group named as their
    field (``cam_agreement``), and a detector run's object scores in one
    named as the path of its objects (``cam_detections.detections``): the App
    shows each of those by its own name, which a narrow sidebar does not cut.
    A new run's groups go after the other CAM runs' groups (or after
    ``labels``); a run shown again keeps its place. Deleting or renaming the
    run updates them.

    Args:
        samples: the run's dataset (or a view of it: its dataset is changed)
        run_key: a CAM run's key
        fields (None): the heatmap fields to show, in display order; default
            all of the run's
    """
    dataset = samples._root_dataset
    dataset.reload()  # the app config and schema as stored (a worker's copy may be old)
    config = run_config(dataset, run_key)
    fields = list(config.fields) if fields is None else list(fields)
    unknown = [f for f in fields if f not in config.fields]
    if unknown:
        raise CamArgumentError("fields", f"{', '.join(unknown)} are not fields of run '{run_key}'; its fields: {', '.join(config.fields)}")
    schema = dataset.get_field_schema()
    agreement_field = config.agreement_field if config.agreement_field in schema else None  # one map: none
    detections = config.detections_field if config.detections_field in schema else None

    # the maps' scores (target_label, peak, centroid_x, ...) and the agreement
    # values are stored as dynamic attributes: declared, they become sidebar filters
    parents = list(fields) + ([agreement_field] if agreement_field else [])
    dataset.add_dynamic_sample_fields(fields=parents)
    flat = dataset.get_field_schema(flat=True)
    # each map's empty flag, so that maps with no mass can be told from weak ones
    paths = list(fields) + [f"{f}.{EMPTY}" for f in fields if f"{f}.{EMPTY}" in flat]
    if detections:
        paths.append(detections)  # a detector run's objects, their scores as label filters
    named = []  # groups named as a path, each entry titled by the rest of its path
    if agreement_field:
        named.append((agreement_field, sorted(p for p in flat if p.startswith(agreement_field + "."))))
    # a detector run's object scores are offered by its detections field's own filter (expanded in the
    # sidebar): a group of paths into a list of labels (`cam_detections.detections.<score>`) makes
    # FiftyOne 1.22's sample modal fail to open ("...map is not a function"), so there is none
    taken = paths + [p for _, group_paths in named for p in group_paths]

    app = dataset.app_config
    groups = app.sidebar_groups or fo.DatasetAppConfig.default_sidebar_groups(dataset)
    own = run_groups(run_key, config)
    shown = [i for i, g in enumerate(groups) if g.name in own]
    groups = [g for g in groups if g.name not in own]
    for g in groups:
        g.paths = [p for p in g.paths if p not in taken]
    if shown:  # shown before: where it was
        at = shown[0]
    else:  # after "labels" and the other runs' groups
        others = {n for key in list_cam_runs(dataset) for n in run_groups(key, run_config(dataset, key))}
        at = len(groups)
        for i, g in enumerate(groups):
            if g.name == "labels" or g.name in others:
                at = i + 1
    new = [fo.SidebarGroupDocument(name=group_name(run_key), paths=paths, expanded=True)]
    new += [fo.SidebarGroupDocument(name=name, paths=group_paths, expanded=True) for name, group_paths in named
            if group_paths]
    groups[at:at] = new
    app.sidebar_groups = groups

    scheme = app.color_scheme or fo.ColorScheme()
    scheme.color_by = "value"
    app.color_scheme = scheme
    dataset.save()
