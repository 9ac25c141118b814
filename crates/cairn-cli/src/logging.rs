//! The log every `cairn` command writes on stderr: plain text (the default) or JSON Lines
//! (`cairn serve --log-format json`), filtered by `RUST_LOG` (default `info`).
//!
//! The invariant: the log never goes to stdout, which carries only what scripts read. A bad
//! `RUST_LOG` is a configuration mistake reported as a [`ConfigError`] (exit status 2), never a
//! silently quieter or louder log.

use std::fmt;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use crate::config_error::{ConfigError, Origin};

/// The variable holding the log filter.
pub const FILTER_VAR: &str = "RUST_LOG";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event, coloured only at a terminal.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`, and each of the
    /// event's fields (`topic`, `group`, `member`, ...) at the top level, for log pipelines.
    Json,
}

impl LogFormat {
    /// The names accepted, as help and errors show them.
    pub const NAMES: &str = "text or json";

    /// The format named `text`, or `None` for an unknown name.
    pub fn from_name(text: &str) -> Option<LogFormat> {
        match text {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Installs the process's log: `format` on stderr, filtered by `RUST_LOG` (default `info`).
///
/// # Errors
/// [`ConfigError::InvalidValue`] or [`ConfigError::NotUnicode`] for a `RUST_LOG` that is not a
/// valid filter.
pub fn init(format: LogFormat) -> Result<(), ConfigError> {
    let filter = filter()?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colour only for a person at a terminal; a log file or a pipe gets plain text.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
    Ok(())
}

/// What is logged when `RUST_LOG` is not set.
const DEFAULT_DIRECTIVES: &str = "info,openraft=off";

fn filter() -> Result<EnvFilter, ConfigError> {
    let builder = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into());
    match std::env::var(FILTER_VAR) {
        Ok(text) if !text.trim().is_empty() => {
            builder
                .parse(&text)
                .map_err(|err| ConfigError::InvalidValue {
                    origin: Origin::Env(FILTER_VAR),
                    value: text.clone(),
                    reason: err.to_string(),
                })
        }
        // openraft reports every election round and every unreachable peer of every group
        // (hundreds of lines a second while a node of a many-partition cluster is down); Cairn
        // logs the transitions that matter itself. `RUST_LOG=info,openraft=info` shows them.
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(builder.parse_lossy(DEFAULT_DIRECTIVES)),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode { var: FILTER_VAR }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for format in [LogFormat::Text, LogFormat::Json] {
            assert_eq!(LogFormat::from_name(&format.to_string()), Some(format));
        }
        assert_eq!(LogFormat::from_name("JSON"), None);
        assert_eq!(LogFormat::from_name(""), None);
    }
}
