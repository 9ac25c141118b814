//! Users, passwords and ACLs through the real binary, as an operator sets them up: users and
//! topics added while authorization is off, the broker restarted with `--authorization on`,
//! then a produce that is denied by name, allowed once the super user adds an ACL, and refused
//! UNAUTHENTICATED with a wrong password. Over plaintext loopback, where passwords are allowed.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::path::Path;

use common::*;

fn password_file(dir: &Path, name: &str, password: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{password}\n")).unwrap();
    path.to_str().unwrap().to_string()
}

fn as_user(
    broker: &str,
    user: &str,
    file: &str,
    args: &[&str],
    input: &[u8],
) -> std::process::Output {
    let mut full = vec!["--user", user, "--password-file", file];
    full.extend_from_slice(args);
    cli_with_input(broker, &full, input)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn acls_deny_then_allow_a_password_users_produce_and_wrong_passwords_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let alice_pw = password_file(secrets.path(), "alice", "alice-secret-1");
    let admin_pw = password_file(secrets.path(), "admin", "admin-secret-1");
    let wrong_pw = password_file(secrets.path(), "wrong", "not-the-password");

    let (server, broker) = start_broker(data.path());
    cli_ok(
        &broker,
        &["user", "add", "alice", "--new-password-file", &alice_pw],
    );
    cli_ok(
        &broker,
        &["user", "add", "admin", "--new-password-file", &admin_pw],
    );
    cli_ok(&broker, &["topic", "create", "orders"]);
    let users = cli_ok(&broker, &["user", "list", "--format", "json"]);
    assert!(
        users.contains("\"alice\"") && users.contains("SCRAM-SHA-256"),
        "{users}"
    );
    assert!(!users.contains("stored_key") && !users.contains("alice-secret-1"));
    stop_broker(server);

    let mut secured = serve_on_free_ports(data.path());
    secured.args(["--authorization", "on", "--super-users", "User:admin"]);
    let (server, broker) = start_command(secured);

    let denied = as_user(
        &broker,
        "alice",
        &alice_pw,
        &["produce", "orders"],
        b"one\n",
    );
    assert!(!denied.status.success());
    let text = stderr(&denied);
    // The producer's metadata read is refused first (Describe, which Write would imply).
    assert!(text.contains("TopicAuthorizationFailed"), "{text}");
    assert!(text.contains("User:alice is not allowed to"), "{text}");
    assert!(text.contains("\"orders\""), "{text}");

    let unauthenticated = as_user(&broker, "alice", &wrong_pw, &["topic", "list"], b"");
    assert!(!unauthenticated.status.success());
    let text = stderr(&unauthenticated);
    assert!(text.contains("SaslAuthenticationFailed"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");

    let granted = as_user(
        &broker,
        "admin",
        &admin_pw,
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "write",
            "--topic",
            "ord",
            "--resource-pattern-type",
            "prefixed",
        ],
        b"",
    );
    assert!(granted.status.success(), "{}", stderr(&granted));
    let produced = as_user(
        &broker,
        "alice",
        &alice_pw,
        &["produce", "orders"],
        b"one\ntwo\n",
    );
    assert!(produced.status.success(), "{}", stderr(&produced));

    // Reading needs Read: denied, then allowed on the consume and the replay paths, and on a
    // group's (Read on the group too).
    let consume = ["consume", "orders", "--from", "earliest", "--until-end"];
    let denied = as_user(&broker, "alice", &alice_pw, &consume, b"");
    assert!(!denied.status.success());
    assert!(
        stderr(&denied).contains("TopicAuthorizationFailed"),
        "{}",
        stderr(&denied)
    );
    let granted = as_user(
        &broker,
        "admin",
        &admin_pw,
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "read",
            "--topic",
            "orders",
            "--group",
            "billing",
        ],
        b"",
    );
    assert!(granted.status.success(), "{}", stderr(&granted));
    let group = [
        "consume", "orders", "--group", "billing", "--from", "earliest", "--max", "2",
    ];
    for args in [&consume[..], &["replay", "orders"], &group[..]] {
        let read = as_user(&broker, "alice", &alice_pw, args, b"");
        assert!(read.status.success(), "{args:?}: {}", stderr(&read));
        assert_eq!(
            String::from_utf8_lossy(&read.stdout),
            "one\ntwo\n",
            "{args:?}"
        );
    }

    // A malformed ACL names its field; alice may not list ACLs (Describe on the cluster).
    let bad = as_user(
        &broker,
        "admin",
        &admin_pw,
        &[
            "acl",
            "add",
            "--allow-principal",
            "alice",
            "--operation",
            "read",
            "--topic",
            "x",
        ],
        b"",
    );
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("principal"), "{}", stderr(&bad));
    let listed = as_user(&broker, "admin", &admin_pw, &["acl", "list"], b"");
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("Allow User:alice Write"),
        "{}",
        String::from_utf8_lossy(&listed.stdout)
    );
    let refused = as_user(&broker, "alice", &alice_pw, &["acl", "list"], b"");
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("CLUSTER_AUTHORIZATION_FAILED")
            || stderr(&refused).contains("not allowed")
    );
    stop_broker(server);
}
