"""How a run looks in the App: its own sidebar group, and maps drawn with a colorscale.

By default the App tints a heatmap so faintly that a map is hard to see; a
dataset colour scheme that colours by value with a colorscale per field
makes it plain. Both settings are stored on the dataset (``app_config``), so
every App session of the dataset shows them without the user setting
anything. A user's own colorscale for a field is kept.
"""
COLORSCALE = "jet"


def group_name(run_key):
    """The sidebar group of a run."""
    return f"cam: {run_key}"


def show_run(dataset, run_key, fields):
    """Puts a run's fields in their own sidebar group (after ``labels``) and
    gives each a colorscale.

    Args:
        dataset: the ``fo.Dataset``
        run_key: the run
        fields: its sample fields, in display order
    """
    import fiftyone as fo

    config = dataset.app_config
    groups = config.sidebar_groups or fo.DatasetAppConfig.default_sidebar_groups(dataset)
    name = group_name(run_key)
    groups = [g for g in groups if g.name != name]
    for g in groups:
        g.paths = [p for p in g.paths if p not in fields]
    at = next((i + 1 for i, g in enumerate(groups) if g.name == "labels"), len(groups))
    groups.insert(at, fo.SidebarGroupDocument(name=name, paths=list(fields), expanded=True))
    config.sidebar_groups = groups

    scheme = config.color_scheme or fo.ColorScheme()
    scheme.color_by = "value"
    scales = list(scheme.colorscales or [])
    have = {s.get("path") for s in scales}
    scales += [{"path": f, "name": COLORSCALE, "list": None} for f in fields if f not in have]
    scheme.colorscales = scales
    config.color_scheme = scheme
    dataset.save()


def forget_run(dataset, run_key, fields):
    """Removes a deleted run's sidebar group and colorscales."""
    config = dataset.app_config
    if config.sidebar_groups:
        config.sidebar_groups = [g for g in config.sidebar_groups if g.name != group_name(run_key)]
    scheme = config.color_scheme
    if scheme is not None and scheme.colorscales:
        scheme.colorscales = [s for s in scheme.colorscales if s.get("path") not in set(fields)]
    dataset.save()
