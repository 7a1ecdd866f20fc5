"""``python -m kb.cli``: the ``circuitkb`` command without its installed script."""

from kb.cli import main

main()
