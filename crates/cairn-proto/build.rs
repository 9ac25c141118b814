//! Compiles `proto/cairn/v1/*.proto` with a vendored `protoc` (no system install needed), and
//! writes the file descriptor set that the server's reflection service publishes. Compiles
//! `proto/cairn/cluster/v1/peer.proto` (node-to-node traffic) separately, so that reflection and
//! the tests that walk the client API's descriptors never see it.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let protos: Vec<PathBuf> = [
        "common", "producer", "consumer", "admin", "metadata", "groups",
    ]
    .iter()
    .map(|name| root.join(format!("cairn/v1/{name}.proto")))
    .collect();
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    config.bytes(["."]);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("cairn_v1_descriptor.bin"))
        .compile_with_config(config, &protos, std::slice::from_ref(&root))?;

    let cluster = root.join("cairn/cluster/v1/peer.proto");
    println!("cargo:rerun-if-changed={}", cluster.display());
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Call and reply payloads (Raft messages of up to megabytes) stay one buffer from the
    // HTTP/2 frame to the group, as record batches do in cairn.v1.
    config.bytes(["."]);
    tonic_prost_build::configure().compile_with_config(config, &[cluster], &[root])?;
    Ok(())
}
