"""Computing a run: its arguments checked and settled, then batch after batch.

- :mod:`.api`: :func:`compute_cams`, :func:`check_compute_args`;
- :mod:`.checks`: every check of the arguments, settled into a plan;
- :mod:`.plan`: the settled run (:class:`Plan`), field names, agreement groups;
- :mod:`.runner`: the run recorded, the batch loop, the results;
- :mod:`.batch`: one batch: targets, the engine's pass, ROAD;
- :mod:`.truth`: the ground truth a batch needs;
- :mod:`.writer`: Heatmaps, scores and the one update per sample.
"""
