//! The retention check interval: from flag, variable or file, its default, and bad values
//! named.

use std::time::Duration;

use super::*;

fn interval(cfg: &ServeConfig) -> Duration {
    cfg.cluster.retention_purge_interval()
}

#[test]
fn the_retention_check_defaults_to_kafkas_five_minutes() {
    let cfg = resolve(&args(&[]), no_env, None).unwrap();
    assert_eq!(interval(&cfg), Duration::from_secs(300));
}

#[test]
fn the_retention_check_comes_from_the_file_then_env_then_flag() {
    let text = "log_retention_check_interval_ms = 60000\n";
    let from_file = resolve(&args(&[]), no_env, file(text)).unwrap();
    assert_eq!(interval(&from_file), Duration::from_secs(60));
    let vars = env(&[("CAIRN_LOG_RETENTION_CHECK_INTERVAL_MS", "30000")]);
    let from_env = resolve(&args(&[]), &vars, file(text)).unwrap();
    assert_eq!(interval(&from_env), Duration::from_secs(30));
    let flag = args(&["--log-retention-check-interval-ms", "1000"]);
    let from_flag = resolve(&flag, &vars, file(text)).unwrap();
    assert_eq!(interval(&from_flag), Duration::from_secs(1));
}

#[test]
fn a_retention_check_out_of_range_is_named() {
    for bad in ["0", "999", "-1", "5m", "604800001"] {
        let err = error_of(resolve(
            &args(&["--log-retention-check-interval-ms", bad]),
            no_env,
            None,
        ));
        assert_eq!(
            err,
            format!(
                "invalid value \"{bad}\" for --log-retention-check-interval-ms: expected a whole \
                 number of milliseconds from 1000 to 604800000"
            )
        );
    }
    let err = error_of(resolve(
        &args(&[]),
        no_env,
        file("log_retention_check_interval_ms = \"60000\"\n"),
    ));
    assert!(
        err.contains("log_retention_check_interval_ms") && err.contains("expected an integer"),
        "{err}"
    );
}
