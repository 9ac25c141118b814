//! A full disk is one refusal wherever it is met: a create that runs out of space answers
//! RESOURCE_EXHAUSTED/DISK_FULL (retriable), as a produce does, not UNAVAILABLE/
//! KAFKA_STORAGE_ERROR. Needs root to mount a small tmpfs; skips loudly without it.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_proto::v1::CreateTopicRequest;
use cairn_proto::v1::admin_client::AdminClient;
use tonic::Code;
use tonic_types::StatusExt;

/// Room for the broker's own `__consumer_offsets` partitions at start, and little more.
const TMPFS_SIZE: &str = "size=400m";

/// A tmpfs mounted for the test's life.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Option<Tmpfs> {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", TMPFS_SIZE, "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0_u8; 1 << 20];
    while file.write_all(&chunk).is_ok() {}
    // Also take the last partial block.
    while file.write_all(&chunk[..4096]).is_ok() {}
}

#[tokio::test]
async fn a_create_on_a_full_disk_is_disk_full() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(dir.path()) else {
        eprintln!(
            "\n*** SKIPPED a_create_on_a_full_disk_is_disk_full: cannot mount a tmpfs (needs root) ***\n"
        );
        return;
    };
    let data = dir.path().join("data");
    let started = common::start(&data).await;
    let filler = dir.path().join("filler");
    fill(&filler);

    let status = AdminClient::connect(started.url.clone())
        .await
        .unwrap()
        .create_topic(CreateTopicRequest {
            name: "orders".into(),
            partitions: 4,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let info = status.get_details_error_info().expect("an ErrorInfo");
    assert_eq!(info.reason, "DISK_FULL", "{status:?}");

    std::fs::remove_file(&filler).unwrap();
    started.stop.send(()).unwrap();
    started.server.await.unwrap();
}
