"""How a run looks in the App: its own sidebar group, and maps coloured by value.

With the App's default colour scheme (colour by field), a heatmap is drawn
in its field's single colour, which says little about where the map is
high. Colouring by value draws each map through the App's colorscale, so
the map is plain to see. Both settings are stored on the dataset
(``app_config``), so every App session of the dataset shows them without
the user setting anything.
"""


def group_name(run_key):
    """The sidebar group of a run."""
    return f"cam: {run_key}"


def show_run(dataset, run_key, fields, agreement_field=None):
    """Puts a run's fields in their own sidebar group, makes their scores
    filterable, and colours the dataset's labels by value.

    The group goes after the other CAM runs' groups (or after ``labels``) and
    holds the heatmap fields, then the agreement values.

    Args:
        dataset: the ``fo.Dataset``
        run_key: the run
        fields: its heatmap fields, in display order
        agreement_field (None): its agreement field, if any
    """
    import fiftyone as fo

    # the maps' scores (target_label, peak, centroid_x, ...) and the agreement
    # values are stored as dynamic attributes: declared, they become sidebar filters
    parents = list(fields) + ([agreement_field] if agreement_field else [])
    dataset.add_dynamic_sample_fields(fields=parents)
    paths = list(fields)
    if agreement_field:
        prefix = agreement_field + "."
        paths += sorted(p for p in dataset.get_field_schema(flat=True) if p.startswith(prefix))

    config = dataset.app_config
    groups = config.sidebar_groups or fo.DatasetAppConfig.default_sidebar_groups(dataset)
    name = group_name(run_key)
    # an embedded document gets a default group of its own: the run's group replaces it
    groups = [g for g in groups if g.name not in (name, agreement_field)]
    for g in groups:
        g.paths = [p for p in g.paths if p not in paths]
    at = len(groups)
    for i, g in enumerate(groups):
        if g.name == "labels" or g.name.startswith(group_name("")):
            at = i + 1
    groups.insert(at, fo.SidebarGroupDocument(name=name, paths=paths, expanded=True))
    config.sidebar_groups = groups

    scheme = config.color_scheme or fo.ColorScheme()
    scheme.color_by = "value"
    config.color_scheme = scheme
    dataset.save()


def forget_run(dataset, run_key):
    """Removes a deleted run's sidebar group."""
    config = dataset.app_config
    if config.sidebar_groups:
        config.sidebar_groups = [g for g in config.sidebar_groups if g.name != group_name(run_key)]
        dataset.save()
