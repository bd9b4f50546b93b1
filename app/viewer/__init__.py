"""The built-in web viewer: a static page served by the service that calls its public JSON API.

See `app.viewer.routes` for how it is served (and why it adds no server surface).
"""

from app.viewer.routes import STATIC_DIR, install_viewer

__all__ = ["STATIC_DIR", "install_viewer"]
