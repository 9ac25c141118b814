//! `cairn-controller`: the cluster's metadata as a pure state machine. Commands committed by the
//! controller Raft group go in, the new metadata and the actions each node must take come out; no
//! sockets, files or clocks, so every rule is tested in memory.
