"""The original's exceptions, with the same names and ``.value``.

Every error of the drop-in is a :class:`ServiceRegistryException`: the
original's two (:class:`NoConnection`, :class:`ReadOnly`) and one subclass
per other failure, which the original swallowed or let escape as kazoo's
own exceptions.
"""

__all__ = [
    "ServiceRegistryException",
    "NoConnection",
    "ReadOnly",
    "NotAuthorized",
    "Conflict",
    "InvalidPath",
    "DataTooLarge",
    "NotEmpty",
    "NotALock",
    "LockMismatch",
]


class ServiceRegistryException(Exception):
    """Base class; ``value`` is the reason (usually a str)."""

    def __init__(self, e):
        super(ServiceRegistryException, self).__init__(e)
        self.value = e

    def __str__(self):
        # The original returned value unchanged, so str() raised for a
        # value that is not a str.
        return str(self.value)


class NoConnection(ServiceRegistryException):
    """Not connected to ZooKeeper."""


class ReadOnly(ServiceRegistryException):
    """A write on a read-only registry."""


class NotAuthorized(ServiceRegistryException):
    """ZooKeeper refused the operation on the node's ACL."""


class Conflict(ServiceRegistryException):
    """The node is held by another session."""


class InvalidPath(ServiceRegistryException):
    """Not a valid ZooKeeper path."""


class DataTooLarge(ServiceRegistryException):
    """The data is over the servers' limit."""


class NotEmpty(ServiceRegistryException):
    """The node has children."""


class NotALock(ServiceRegistryException):
    """The lock path holds a node that is not a lock."""


class LockMismatch(ServiceRegistryException, ValueError):
    """The lock's holders disagree on the lease count (a ValueError, as
    kazoo's was)."""
