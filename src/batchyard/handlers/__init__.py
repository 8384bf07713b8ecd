"""Built-in handlers."""
