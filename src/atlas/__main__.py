"""``python -m atlas``: the same as the ``atlas`` command."""

from atlas.cli.app import main

main()
