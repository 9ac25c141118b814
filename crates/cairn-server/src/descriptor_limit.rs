//! The process's open-file limit (`RLIMIT_NOFILE`). Every connection, segment and index file
//! costs a descriptor, and the soft limit is often far below the hard one (systemd and many
//! shells give 1,024 soft), so `cairn serve` raises the soft limit to the hard one at start; the
//! default connection limit is then derived from what it got.
//!
//! It never raises the hard limit (that needs privileges and is the operator's decision).

use std::io;

/// The open-file limits after [`raise_to_hard`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DescriptorLimit {
    /// The soft limit found at start.
    pub soft_before: Option<u64>,
    /// The soft limit now in force; `None` means unlimited.
    pub soft: Option<u64>,
    /// The hard limit; `None` means unlimited.
    pub hard: Option<u64>,
}

/// Why the limit could not be read or raised.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorLimitError {
    /// `getrlimit(RLIMIT_NOFILE)` failed.
    #[error("cannot read the open-file limit (RLIMIT_NOFILE): {0}")]
    Read(#[source] io::Error),
    /// `setrlimit(RLIMIT_NOFILE)` failed.
    #[error("cannot raise the open-file soft limit from {soft} to the hard limit {hard}: {source}")]
    Raise {
        /// The soft limit that stays in force.
        soft: String,
        /// The hard limit asked for.
        hard: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn finite(value: libc::rlim_t) -> Option<u64> {
    (value != libc::RLIM_INFINITY).then_some(value)
}

fn text(value: Option<u64>) -> String {
    value.map_or_else(|| "unlimited".to_string(), |v| v.to_string())
}

/// The current open-file limits, unchanged.
///
/// # Errors
/// [`DescriptorLimitError::Read`] if the OS refuses to say.
pub fn current() -> Result<DescriptorLimit, DescriptorLimitError> {
    let limit = get()?;
    Ok(DescriptorLimit {
        soft_before: finite(limit.rlim_cur),
        soft: finite(limit.rlim_cur),
        hard: finite(limit.rlim_max),
    })
}

/// Raises the soft open-file limit to the hard limit, if it is lower, and logs both at INFO.
///
/// # Errors
/// [`DescriptorLimitError`] if the limit cannot be read or set; the old limit then stays.
pub fn raise_to_hard() -> Result<DescriptorLimit, DescriptorLimitError> {
    let mut limit = get()?;
    let soft_before = finite(limit.rlim_cur);
    if limit.rlim_cur != limit.rlim_max {
        let wanted = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass and nothing else.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } != 0 {
            return Err(DescriptorLimitError::Raise {
                soft: text(soft_before),
                hard: text(finite(limit.rlim_max)),
                source: io::Error::last_os_error(),
            });
        }
        limit = get()?;
    }
    let raised = DescriptorLimit {
        soft_before,
        soft: finite(limit.rlim_cur),
        hard: finite(limit.rlim_max),
    };
    tracing::info!(
        soft_before = %text(raised.soft_before),
        soft = %text(raised.soft),
        hard = %text(raised.hard),
        "open-file limit (RLIMIT_NOFILE)"
    );
    Ok(raised)
}

fn get() -> Result<libc::rlimit, DescriptorLimitError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct we pass, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(DescriptorLimitError::Read(io::Error::last_os_error()));
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_limit() {
        let raised = raise_to_hard().unwrap();
        assert_eq!(raised.soft, raised.hard);
        assert_eq!(current().unwrap().soft, raised.hard);
    }
}
