"""A run's own group in the App's sidebar: its name, and following the run
when it is deleted or renamed (the run's cleanup and rename call these)."""


def group_name(run_key):
    """The sidebar group of a run."""
    return f"cam: {run_key}"


def forget_run(dataset, run_key):
    """Removes a deleted run's sidebar group (the run's cleanup calls this)."""
    config = dataset.app_config
    if config.sidebar_groups and any(g.name == group_name(run_key) for g in config.sidebar_groups):
        config.sidebar_groups = [g for g in config.sidebar_groups if g.name != group_name(run_key)]
        dataset.save()


def rename_run(dataset, run_key, new_key, renamed):
    """Follows a renamed run: its group's name and its fields' paths
    (``renamed``: ``{old field: new field}``; the run's rename calls this)."""
    config = dataset.app_config
    for g in config.sidebar_groups or []:
        if g.name == group_name(run_key):
            g.name = group_name(new_key)
            g.paths = [_renamed_path(p, renamed) for p in g.paths]
            dataset.save()
            return


def _renamed_path(path, renamed):
    head, dot, rest = path.partition(".")
    return renamed.get(head, head) + dot + rest
