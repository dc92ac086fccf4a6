"""The Ray Serve application; ``serve run serve_app:app`` starts it."""

from serve_app.app import Gateway, app, build_app, origin_allowed

__all__ = ["Gateway", "app", "build_app", "origin_allowed"]
