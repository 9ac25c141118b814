//! The TLS settings: each from flag, variable or file, and their shape mistakes named.

use std::path::PathBuf;

use cairn_server::tls::TlsFiles;

use super::*;

#[test]
fn tls_is_off_and_plaintext_not_allowed_by_default() {
    let cfg = resolve(&args(&[]), no_env, None).unwrap();
    assert_eq!(cfg.tls, None);
    assert!(!cfg.allow_plaintext);
}

#[test]
fn tls_files_come_from_the_file_then_env_then_flags() {
    let text = "tls_cert = \"/f/c.pem\"\ntls_key = \"/f/k.pem\"\ntls_client_ca = \"/f/ca.pem\"\n\
                allow_plaintext = true\n";
    let from_file = resolve(&args(&[]), no_env, file(text)).unwrap();
    assert_eq!(
        from_file.tls,
        Some(TlsFiles {
            cert: PathBuf::from("/f/c.pem"),
            key: PathBuf::from("/f/k.pem"),
            client_ca: Some(PathBuf::from("/f/ca.pem")),
        })
    );
    assert!(from_file.allow_plaintext);
    let vars = env(&[
        ("CAIRN_TLS_CERT", "/e/c.pem"),
        ("CAIRN_TLS_KEY", "/e/k.pem"),
        ("CAIRN_ALLOW_PLAINTEXT", "false"),
    ]);
    let from_env = resolve(&args(&[]), &vars, file(text)).unwrap();
    let tls = from_env.tls.unwrap();
    assert_eq!(tls.cert, PathBuf::from("/e/c.pem"));
    assert_eq!(tls.client_ca, Some(PathBuf::from("/f/ca.pem")));
    assert!(!from_env.allow_plaintext);
    let flags = args(&[
        "--tls-cert",
        "/a/c.pem",
        "--tls-key",
        "/a/k.pem",
        "--tls-client-ca",
        "/a/ca.pem",
        "--allow-plaintext",
    ]);
    let from_flags = resolve(&flags, &vars, file(text)).unwrap();
    let tls = from_flags.tls.unwrap();
    assert_eq!(tls.key, PathBuf::from("/a/k.pem"));
    assert_eq!(tls.client_ca, Some(PathBuf::from("/a/ca.pem")));
    assert!(from_flags.allow_plaintext);
}

#[test]
fn tls_shape_mistakes_name_the_setting() {
    for (argv, vars, text, expected) in [
        (&["--tls-cert", "/c.pem"][..], &[][..], "", "--tls-cert"),
        (
            &[][..],
            &[("CAIRN_TLS_KEY", "/k.pem")][..],
            "",
            "CAIRN_TLS_KEY",
        ),
        (
            &[][..],
            &[][..],
            "tls_client_ca = \"/ca.pem\"\n",
            "tls_client_ca",
        ),
        (
            &["--tls-cert", "", "--tls-key", "/k"][..],
            &[][..],
            "",
            "must not be empty",
        ),
        (
            &[][..],
            &[("CAIRN_ALLOW_PLAINTEXT", "yes")][..],
            "",
            "true or false",
        ),
        (
            &[][..],
            &[][..],
            "allow_plaintext = \"yes\"\n",
            "allow_plaintext",
        ),
    ] {
        let from_file = (!text.is_empty()).then(|| file(text)).flatten();
        let err = resolve(&args(argv), env(vars), from_file)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{argv:?} {vars:?} {text:?}: {err}");
    }
}
