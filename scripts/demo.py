"""Runs the offline demo (``make demo``): see ``demo/`` and ``python scripts/demo.py --help``.

Trains a CNN classifier, a segmenter and a ViT on the spot on real images with
a planted shortcut, computes CAMs and their ground-truth scores with
cam_core, prints how well low ``mass_inside`` finds the samples the shortcut
fooled, and opens the FiftyOne App on the saved view (``--no-app``: exits instead).
"""
import os
import sys

# the demo package lives at the repository root, next to cam_core
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from demo.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
