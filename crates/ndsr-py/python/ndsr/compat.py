"""The drop-in for ``nd_service_registry`` 1.1.0, also importable as
``ndsr.compat``: ``from ndsr.compat import KazooServiceRegistry``."""

from nd_service_registry import *  # noqa: F401,F403
from nd_service_registry import __all__, exceptions, funcs, lock, registration  # noqa: F401
