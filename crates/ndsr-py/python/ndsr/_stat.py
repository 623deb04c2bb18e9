"""kazoo's ``ZnodeStat``, so that code written for kazoo reads ndsr's stats."""

from collections import namedtuple

__all__ = ["ZnodeStat"]


class ZnodeStat(
    namedtuple(
        "ZnodeStat",
        "czxid mzxid ctime mtime version cversion aversion ephemeralOwner dataLength numChildren pzxid",
    )
):
    """A node's metadata, field for field and property for property as
    ``kazoo.protocol.states.ZnodeStat`` (times in milliseconds).

    Every field is also readable under the name the agent's JSON, ``ndsr
    get --format json`` and Rust's ``ndsr::Stat`` give it (ZooKeeper's
    names in snake_case): ``ephemeral_owner``, ``data_length`` and
    ``num_children`` beside kazoo's ``ephemeralOwner``, ``dataLength`` and
    ``numChildren``; the others are spelled the same everywhere."""

    __slots__ = ()

    @property
    def acl_version(self):
        """The ACL version."""
        return self.aversion

    @property
    def children_version(self):
        """The children version."""
        return self.cversion

    @property
    def created(self):
        """Creation time in seconds since the epoch."""
        return self.ctime / 1000.0

    @property
    def last_modified(self):
        """Last modification time in seconds since the epoch."""
        return self.mtime / 1000.0

    @property
    def owner_session_id(self):
        """The owning session of an ephemeral node, else None."""
        return self.ephemeralOwner or None

    @property
    def creation_transaction_id(self):
        """The zxid that created the node."""
        return self.czxid

    @property
    def last_modified_transaction_id(self):
        """The zxid of the last data change."""
        return self.mzxid

    @property
    def data_length(self):
        """Length of the data in bytes."""
        return self.dataLength

    @property
    def ephemeral_owner(self):
        """The owning session of an ephemeral node, 0 for a persistent one
        (``ephemeralOwner``, as the agent's JSON names it)."""
        return self.ephemeralOwner

    @property
    def num_children(self):
        """Number of children (``numChildren``, as the agent's JSON names it)."""
        return self.numChildren

    @property
    def children_count(self):
        """Number of children."""
        return self.numChildren
