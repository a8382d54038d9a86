"""The ``automixer`` command line and its embedded Prefect runtime."""
