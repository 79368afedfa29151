"""Registering models for the App and delegated workers: the ``register_cam_model``
and ``unregister_cam_model`` operators (see :func:`cam_core.register_factory`)."""
import json

import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import choices, progress


class RegisterCamModel(foo.Operator):
    """Registers a model under a name, as an importable factory stored in the
    database: the App server and every delegated worker that shares the
    database build it from there.

    The factory's module must be allowed by the App server and by every
    worker (``FIFTYONE_CAM_FACTORY_MODULES``: comma-separated module
    prefixes, in the environment or as the plugin secret); anything else is
    refused before it is imported. The keyword arguments are plain JSON.

    From Python::

        # my_models.py, importable by the App server and the workers,
        # which run with FIFTYONE_CAM_FACTORY_MODULES=my_models:
        #     def tiny_resnet():
        #         return cam_core.CamModel(module, transforms, classes)
        foo.get_operator("@fiftyone-cam/cam/register_cam_model")(
            "tiny-resnet", "my_models:tiny_resnet"
        )
    """

    @property
    def config(self):
        return foo.OperatorConfig(
            name="register_cam_model",
            label="Register a model for CAMs",
            description="Name an importable model factory for the compute_cams form and delegated workers",
            dynamic=True,
            view_target=False,
        )

    def __call__(self, name, factory, kwargs=None, overwrite=False):
        """Registers ``factory`` (``"package.module:function"``, called with
        ``kwargs``) as ``name``; see :func:`cam_core.register_factory`.

        Returns:
            a dict with ``name``, ``factory`` and the model's ``num_layers``,
            ``suggested`` layers and ``segmenter`` flag (the model is built once
            to check it), and the ``message`` the App shows
        """
        params = {"name": name, "factory": factory, "kwargs": json.dumps(kwargs or {}), "overwrite": overwrite}
        return foo.execute_operator(self.uri, params=params).result

    def resolve_input(self, ctx):
        import cam_core

        # what the App sends is untrusted: only the deployment's modules
        with cam_core.checks.allow_factory_modules(choices.secret(ctx, cam_core.checks.FACTORY_MODULES_ENV)):
            return self._form(ctx)

    def _form(self, ctx):
        import cam_core

        inputs = types.Object()
        known = cam_core.checks.registered_factories()
        if known:
            inputs.view("known", types.Notice(
                label="Registered: " + ", ".join(f"{n} ({e['factory']})" for n, e in known.items()),
            ))
        inputs.str("name", required=True, label="Name", description="How the compute_cams form lists it")
        inputs.str(
            "factory", required=True, label="Factory",
            description=(
                "'package.module:function', importable by the App server and every delegated worker, from a "
                f"module they allow ({cam_core.checks.FACTORY_MODULES_ENV}); it returns a cam_core.CamModel, a "
                "torch.nn.Module or a zoo TorchImageModel"
            ),
        )
        kwargs_prop = inputs.str("kwargs", default="{}", label="Keyword arguments",
                                 description='A JSON object, e.g. {"checkpoint": "/models/birds.pt"}')
        name = ctx.params.get("name")
        if name in known:
            inputs.bool("overwrite", default=False, label=f"Replace the registration of '{name}'")
        try:
            kwargs = _kwargs(ctx.params)
        except ValueError as e:
            choices.invalid(kwargs_prop, str(e))
            kwargs = None
        if name and ctx.params.get("factory") and kwargs is not None:
            choices.engine_check(inputs, {}, cam_core.checks.check_factory_args, name, ctx.params["factory"], kwargs,
                                 bool(ctx.params.get("overwrite")))
        return types.Property(inputs, view=types.View(label="Register a model for CAMs"))

    def execute(self, ctx):
        import cam_core

        p = ctx.params
        # built and probed once, so a broken factory fails now, not in a worker;
        # checked again here (not only by the form): execute may be reached without it
        with cam_core.checks.allow_factory_modules(choices.secret(ctx, cam_core.checks.FACTORY_MODULES_ENV)):
            d = progress.contained(cam_core.register_factory)(p["name"], p["factory"], _kwargs(p),
                                                              overwrite=bool(p.get("overwrite")))
        suggested = f"layer{'s' if len(d.default_layers) > 1 else ''} {', '.join(d.default_layers)}"
        message = (f"Model '{p['name']}' registered: a {d.kind} with {len(d.layers)} explainable layers, suggested "
                   f"{suggested}. The compute_cams form offers it under 'Registered'")
        ctx.ops.notify(message, variant="success")
        return {
            "name": p["name"],
            "factory": p["factory"],
            "num_layers": len(d.layers),
            "suggested": d.default_layers,
            "segmenter": d.segmenter,
            "message": message,
        }


def _kwargs(params):
    """The factory's keyword arguments, parsed from the form's JSON text
    (data only: ``json.loads`` evaluates nothing) and bounded in depth and
    size (:func:`cam_core.checks.parse_kwargs`; a CamArgumentError is a ValueError)."""
    import cam_core

    return cam_core.checks.parse_kwargs(params.get("kwargs"))


class UnregisterCamModel(foo.Operator):
    """Removes a model registration.

    From Python: ``foo.get_operator("@fiftyone-cam/cam/unregister_cam_model")("tiny-resnet")``
    """

    @property
    def config(self):
        return foo.OperatorConfig(
            name="unregister_cam_model",
            label="Unregister a CAM model",
            dynamic=True,
            view_target=False,
        )

    def __call__(self, name):
        return foo.execute_operator(self.uri, params={"name": name}).result

    def resolve_input(self, ctx):
        import cam_core

        inputs = types.Object()
        names = list(cam_core.checks.registered_factories())
        prop = inputs.enum("name", names, required=True, label="Model", view=choices.dropdown(names))
        if not names:
            choices.invalid(prop, "no model is registered")
        return types.Property(inputs, view=types.View(label="Unregister a CAM model"))

    def execute(self, ctx):
        import cam_core

        return {"name": ctx.params["name"], "removed": cam_core.unregister_factory(ctx.params["name"])}
