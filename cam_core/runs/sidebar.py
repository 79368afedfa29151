"""A run's own groups in the App's sidebar (its maps, its agreement values,
a detector run's object scores): their names, following the run when it is
deleted or renamed (the run's cleanup and rename call these).

The App titles an entry by its path, less the name of its group when the
path starts with it: a group named as a field shows that field's values by
their own short names (``methods_layer4``, not ``cam_agreement.methods_layer4``,
which a narrow sidebar cuts).
"""


def group_name(run_key):
    """The sidebar group of a run."""
    return f"cam: {run_key}"


def objects_group(detections_field):
    """The group of a detector run's object scores that earlier versions made
    (named as the path of its objects): removed when the run is shown again or
    deleted, since such a group stops FiftyOne's sample modal from opening."""
    return f"{detections_field}.detections"


def run_groups(run_key, config=None):
    """The names of a run's groups: its own, its agreement values' (named as
    their field) and a detector run's object scores' (``config``: its
    :class:`cam_core.types.CamRunConfig`)."""
    agreement = getattr(config, "agreement_field", None)
    detections = getattr(config, "detections_field", None)
    return [group_name(run_key)] + ([agreement] if agreement else []) + ([objects_group(detections)] if detections else [])


def forget_run(dataset, run_key, config=None):
    """Removes a deleted run's sidebar groups (the run's cleanup calls this)."""
    app_config = dataset.app_config
    names = run_groups(run_key, config)
    if app_config.sidebar_groups and any(g.name in names for g in app_config.sidebar_groups):
        app_config.sidebar_groups = [g for g in app_config.sidebar_groups if g.name not in names]
        dataset.save()


def rename_run(dataset, run_key, new_key, renamed):
    """Follows a renamed run: its groups' names and their fields' paths
    (``renamed``: ``{old field: new field}``; the run's rename calls this)."""
    config = dataset.app_config
    changed = False
    for g in config.sidebar_groups or []:
        # its own group; those named as one of its fields (or a path in one) follow that field
        name = group_name(new_key) if g.name == group_name(run_key) else _renamed_path(g.name, renamed)
        paths = [_renamed_path(p, renamed) for p in g.paths]
        if name != g.name or paths != list(g.paths):
            g.name, g.paths = name, paths
            changed = True
    if changed:
        dataset.save()


def _renamed_path(path, renamed):
    head, dot, rest = path.partition(".")
    return renamed.get(head, head) + dot + rest
