"""The ``batchyard`` command line (Typer + Rich): ``main.py`` builds the app from the command modules.

Commands are thin: they parse options, ask one backend or service and format the answer (``render.py``,
``bar.py``). ``backends.py`` is where the ``jobs`` commands act, the local database through the app's services
or a server through its REST API, both answering with the wire models; ``common.py`` holds what every command
shares (global options, loading ``--app``, error reporting). No command touches the store.
"""
