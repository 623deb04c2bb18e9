"""The drop-in's version: the original's it replaces, and ndsr's."""

from ndsr import __version__ as ndsr_version

__version__ = "1.1.0"
__all__ = ["__version__", "ndsr_version"]
