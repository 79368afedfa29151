"""The offline demo: a CNN, a segmenter, a ViT and a detector trained on the
spot on real images with a planted shortcut, explained with cam_core, shown
in the App.

Run it with ``make demo`` (or ``python -m demo --help``); from Python::

    from demo.run import run_demo, DemoConfig
    result = run_demo(DemoConfig())
"""
