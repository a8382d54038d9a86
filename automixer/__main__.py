"""``python -m automixer``: the same command line as the ``automixer`` script."""

from automixer.cli import app

app()
