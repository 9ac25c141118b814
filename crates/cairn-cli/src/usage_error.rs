//! `UsageError`: a flag or argument whose value cannot work (a bad `--from`, a header that is not
//! `KEY=VALUE`, flags that exclude each other), found after clap has parsed the command line.
//! `main` exits 2 for it, as clap does for its own usage errors, so a script can tell "you
//! called me wrong" from "the broker said no".

/// A usage mistake, as one line naming the flag and what is wrong with its value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Returns early with a [`UsageError`] built like `format!`.
macro_rules! usage_bail {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::usage_error::UsageError(format!($($arg)*))))
    };
}
pub(crate) use usage_bail;

/// An `anyhow` error carrying a [`UsageError`] with this text.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}
