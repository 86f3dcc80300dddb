"""The HTTP face of Atlas (``atlas serve``): JSON under ``/api/v1`` and server-rendered pages.

Every route calls the same :class:`atlas.library.Library` the CLI uses, so an
edit made over HTTP is recorded exactly as the same edit made on the command line.
"""

from atlas.api.app import create_app
from atlas.api.security import Security, is_loopback, new_token

__all__ = ["Security", "create_app", "is_loopback", "new_token"]
