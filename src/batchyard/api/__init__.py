"""The HTTP API: a FastAPI app factory. ``create_app(settings)`` is what ``batchyard serve`` runs."""

from batchyard.api.app import create_app

__all__ = ["create_app"]
