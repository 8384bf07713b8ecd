"""Outbound HTTP for handlers: pooled aiohttp sessions per event loop, the address guard, limits and retries.

``aiohttp`` is imported by these modules, so import them only where a request is about to be made (the handlers
do, on their first item), never for a CLI command that makes none.
"""
