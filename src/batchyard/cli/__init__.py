"""The ``batchyard`` command line (Typer + Rich): ``main.py`` builds the app from the command modules.

Commands are thin: they parse options, call one service function and format the answer (``render.py``,
``bar.py``); ``common.py`` holds what they share (global options, loading ``--app``, error reporting).
"""
