//! Test support (feature `testing`): an in-memory log store and state machine for the partition
//! type configuration, and an in-process transport that hands calls straight to other nodes'
//! group registries. They let the network, registry and many-group behaviour be exercised and
//! measured without disks or sockets; the real storage is the segment log. `sim` runs a group
//! under a seeded simulation of network faults, crashes and a virtual clock.

pub mod mem_store;
pub mod mem_transport;
pub mod sim;

#[cfg(test)]
mod tests;
