"""The kinds of node a registration keeps, as the ``type`` argument of
``KazooServiceRegistry.set`` and ``unset`` takes them."""

__all__ = ["RegistrationBase", "EphemeralNode", "DataNode"]


class RegistrationBase(object):
    """Base of the registration kinds (markers here: ndsr's core keeps the
    registrations)."""


class EphemeralNode(RegistrationBase):
    """An ephemeral node that lives as long as the session (``set_node``)."""


class DataNode(RegistrationBase):
    """A persistent data node (``set_data``)."""
