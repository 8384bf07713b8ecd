"""The service layer: the rules around jobs, uploaded files, keys and sessions, and upkeep.

HTTP routes and CLI commands call these; they call the store. Nothing here writes SQL.
"""
