//! The producer id expiration: from flag, variable or file, its default, and bad values named.

use std::time::Duration;

use super::*;

fn expiration(cfg: &ServeConfig) -> Duration {
    cfg.producer_id_expiration.duration()
}

#[test]
fn producer_ids_expire_after_a_day_unless_told_otherwise() {
    let cfg = resolve(&args(&[]), no_env, None).unwrap();
    assert_eq!(expiration(&cfg), Duration::from_secs(24 * 3600));
}

#[test]
fn the_producer_id_expiration_comes_from_the_file_then_env_then_flag() {
    let text = "producer_id_expiration_ms = 3600000\n";
    let from_file = resolve(&args(&[]), no_env, file(text)).unwrap();
    assert_eq!(expiration(&from_file), Duration::from_secs(3600));
    let vars = env(&[("CAIRN_PRODUCER_ID_EXPIRATION_MS", "60000")]);
    let from_env = resolve(&args(&[]), &vars, file(text)).unwrap();
    assert_eq!(expiration(&from_env), Duration::from_secs(60));
    let flag = args(&["--producer-id-expiration-ms", "1"]);
    let from_flag = resolve(&flag, &vars, file(text)).unwrap();
    assert_eq!(expiration(&from_flag), Duration::from_millis(1));
}

#[test]
fn a_producer_id_expiration_out_of_range_is_named() {
    for bad in ["0", "-1", "1d", "2147483648"] {
        let err = error_of(resolve(
            &args(&["--producer-id-expiration-ms", bad]),
            no_env,
            None,
        ));
        assert_eq!(
            err,
            format!(
                "invalid value \"{bad}\" for --producer-id-expiration-ms: expected a whole \
                 number of milliseconds from 1 to 2147483647"
            )
        );
    }
    let err = error_of(resolve(
        &args(&[]),
        no_env,
        file("producer_id_expiration_ms = 1.5\n"),
    ));
    assert!(
        err.contains("producer_id_expiration_ms") && err.contains("expected an integer"),
        "{err}"
    );
}
