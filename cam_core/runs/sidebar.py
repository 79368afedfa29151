"""A run's own groups in the App's sidebar (its maps, its agreement values):
their names, following the run when it is deleted or renamed (the run's
cleanup and rename call these)."""


def group_name(run_key):
    """The sidebar group of a run."""
    return f"cam: {run_key}"


def run_groups(run_key, agreement_field=None):
    """The names of a run's groups: its own, and its agreement values' (named as their field)."""
    return [group_name(run_key)] + ([agreement_field] if agreement_field else [])


def forget_run(dataset, run_key, agreement_field=None):
    """Removes a deleted run's sidebar groups (the run's cleanup calls this)."""
    config = dataset.app_config
    names = run_groups(run_key, agreement_field)
    if config.sidebar_groups and any(g.name in names for g in config.sidebar_groups):
        config.sidebar_groups = [g for g in config.sidebar_groups if g.name not in names]
        dataset.save()


def rename_run(dataset, run_key, new_key, renamed):
    """Follows a renamed run: its group's name and its fields' paths
    (``renamed``: ``{old field: new field}``; the run's rename calls this)."""
    config = dataset.app_config
    names = {group_name(run_key): group_name(new_key)}
    # a group named as one of the run's fields (its agreement values') follows that field
    names.update(renamed)
    changed = False
    for g in config.sidebar_groups or []:
        if g.name in names:
            g.name = names[g.name]
            g.paths = [_renamed_path(p, renamed) for p in g.paths]
            changed = True
    if changed:
        dataset.save()


def _renamed_path(path, renamed):
    head, dot, rest = path.partition(".")
    return renamed.get(head, head) + dot + rest
