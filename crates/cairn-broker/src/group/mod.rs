//! Consumer groups (KIP-848): for now only the target-assignment computation, `assignor`.

pub(crate) mod assignor;
