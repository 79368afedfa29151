"""Bringing the App up to date after a CAM run was deleted from it: the
dataset reopened (so its sidebar groups are read again), then the view,
sidebar filters and shown fields that did not use the run put back
(:func:`follow_in_app`)."""


# the parameter of the App's steps after a deletion, and the seconds each step waits for the App at most
FOLLOW = "_follow_app"
WAIT_SECONDS = 5.0


def app_state(ctx):
    """What the App shows: the dataset, its saved view's name (or None), its
    stages (a saved view's included), its sidebar filters and shown fields."""
    import cam_core

    name = ctx.request_params.get("view_name")
    stages = (cam_core.checks.serialized_stages(ctx.dataset.load_saved_view(name)) if name
              else ctx.request_params.get("view") or [])
    return {"dataset": ctx.dataset.name, "view_name": name, "stages": stages,
            "filters": dict(ctx.request_params.get("filters") or {}),
            "active": [f for f in ctx.active_fields or [] if isinstance(f, str)]}


def follow_in_app(ctx, uri, state):
    """One step of bringing the App up to date after a run was deleted; each
    step runs as its own (queued) execution of the operator and triggers the next.

    FiftyOne 1.22's App keeps the sidebar groups it loaded for as long as it
    shows the dataset (``reload_dataset`` and ``set_view`` do not re-read
    them), so the run's group would stay, empty, until the page is
    reloaded; it reads them again when it opens the dataset anew. So the App
    leaves the dataset for its datasets list (step ``leave``; the form has
    closed by then), opens it again once it has left (``return``), then gets
    back its view, sidebar filters and shown fields without those on the
    run's fields (``restore``): a view on them would show an empty grid; a
    view that did not use them is restored as it was.
    """
    import cam_core

    fields, stages, filters = state["fields"], state["stages"], state["filters"]
    step = state["step"]
    if step == "leave":
        ctx.ops.open_dataset(None)
        ctx.trigger(uri, {FOLLOW: dict(state, step="return")})
    elif step == "return":
        _wait_for_the_app(showing=None)
        ctx.ops.open_dataset(state["dataset"])
        ctx.trigger(uri, {FOLLOW: dict(state, step="restore")})
    else:
        _wait_for_the_app(showing=state["dataset"])
        kept = [s for s in stages if not cam_core.checks.uses_fields(s, fields)]
        kept_filters = {path: f for path, f in filters.items() if not cam_core.checks.uses_fields(path, fields)}
        if state["view_name"] and len(kept) == len(stages):
            ctx.ops.set_view(name=state["view_name"])
        elif kept:  # as ctx.ops.set_view sends them, the kept stages as the App sent them (their ids too)
            ctx.trigger("set_view", {"view": kept})
        if kept_filters:
            ctx.trigger("set_filters", kept_filters)
        elif filters:
            ctx.ops.clear_sidebar_filters()
        ctx.ops.set_active_fields(fields=[f for f in state["active"] if not cam_core.checks.uses_fields(f, fields)])
        views = state.get("deleted_views") or []
        also = f", and {len(views)} saved view(s) built on it: {', '.join(views)}" if views else ""
        ctx.ops.notify(f"CAM run '{state['run_key']}' deleted: {len(fields)} field(s){also}", variant="success")
    return {}


def _wait_for_the_app(showing):
    """Waits until the App's session shows the dataset named ``showing``
    (None: the datasets list), then a moment for its page to load; at most
    :data:`WAIT_SECONDS` in all."""
    import time

    from fiftyone.server.events.state import get_state

    def shown():
        dataset = get_state().dataset
        return dataset.name if dataset is not None else None

    deadline = time.time() + WAIT_SECONDS
    while shown() != showing and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(min(1.0, max(0.0, deadline - time.time())))
