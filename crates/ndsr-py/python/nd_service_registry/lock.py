"""The original's ``Lock``, on ndsr's locks (kazoo Semaphore layout, so
original and drop-in processes exclude each other).

Unlike the original, a lock freed during the wait is taken, and ``with``
returns the bool of ``acquire()`` as the original does.
"""

import logging

from ndsr import _core
from nd_service_registry import exceptions

__all__ = ["Lock"]

log = logging.getLogger(__name__)


class Lock(object):
    """A lock at ``path`` for ``simultaneous`` holders, waiting up to
    ``wait`` seconds in :meth:`acquire`."""

    def __init__(self, registry, path, name=None, simultaneous=1, wait=300):
        self._registry = registry
        self._path = path
        self._name = name
        self._simultaneous = simultaneous
        self._wait = wait
        self._guard = None

    def acquire(self):
        """Takes the lock within ``wait`` seconds; returns whether it holds it."""
        if self.status():
            return True
        try:
            self._guard = self._registry._core_registry().lock(
                self._path, self._name or "", self._simultaneous, float(self._wait)
            )
        except _core.LockTimeout:
            return False
        except _core.LockMismatch as e:
            raise exceptions.LockMismatch(str(e))
        except _core.NdsrError as e:
            raise self._registry._translate(e)
        return True

    def release(self):
        """Releases the lock: True if it was held."""
        guard, self._guard = self._guard, None
        if guard is None:
            return False
        held = guard.held
        guard.release()
        return held

    def status(self):
        """Is the lock held?"""
        return self._guard is not None and self._guard.held

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
