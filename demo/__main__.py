"""``python -m demo``: see :mod:`demo.cli`."""
from .cli import main

main()
