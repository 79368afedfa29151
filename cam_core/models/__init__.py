"""Models: what a user passes as ``model``, made ready for CAMs.

- :mod:`.cam_model`: :class:`CamModel` (module, transforms, classes) from a model object;
- :mod:`.registry`: names registered in this process and, as importable
  factories, in the database;
- :mod:`.sources`: models by name (torchvision, timm, the zoo, registered);
- :mod:`.describe`: one dry forward: layers, defaults, classes, kind;
- :mod:`.register`: :func:`register_model`, :func:`register_factory`.
"""
