"""The Ray Serve application; ``serve run serve_app:app`` starts it."""

from serve_app.app import Gateway, app

__all__ = ["Gateway", "app"]
