//! ndsr: a service registry and dynamic configuration on Apache ZooKeeper.
