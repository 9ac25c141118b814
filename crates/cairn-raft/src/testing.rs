//! Test support (feature `testing`): an in-memory log store and state machine for the partition
//! type configuration, and an in-process transport that hands calls straight to other nodes'
//! group registries. They let the network, registry and many-group behaviour be exercised and
//! measured without disks or sockets; the real storage is the segment log.

pub mod mem_store;
pub mod mem_transport;

#[cfg(test)]
mod tests;
