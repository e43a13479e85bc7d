//! The CLI's error type: a message for the user and the process exit code it maps to.
//!
//! Exit codes: `2` for bad input or usage (invalid names, unreadable input files, a name that is taken, an
//! element, version or write plan that does not exist, an invalid plan, committing a plan with parts missing, a path
//! that is not a store), `1` for every other failure
//! (I/O, corrupt metadata, contention, a medium that cannot arbitrate writers, ...).

use std::fmt;

/// Exit code for bad input or usage.
pub const EXIT_USAGE: i32 = 2;
/// Exit code for any other failure.
pub const EXIT_FAILURE: i32 = 1;

/// An error to print as `error: <message>` before exiting with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// The process exit code (see the module documentation).
    pub code: i32,
    /// The message shown after `error: `.
    pub message: String,
}

impl CliError {
    /// A bad-input or usage error (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// Any other failure (exit code 1).
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<zarrtx::Error> for CliError {
    fn from(e: zarrtx::Error) -> Self {
        use zarrtx::Error as E;
        match &e {
            E::NotAStore { .. } => CliError::usage(format!("{e} (create a store with `zarrtx init STORE`)")),
            E::UnsafeMedium { path, reason } => CliError::failure(format!(
                "the storage at {} cannot arbitrate concurrent writers: {reason}. Writing is refused; pass \
                 --single-writer if you guarantee that only one process writes",
                path.display()
            )),
            E::ElementExists { .. }
            | E::ElementNotFound { .. }
            | E::InvalidName { .. }
            | E::InvalidElement { .. }
            | E::VersionNotAvailable { .. }
            | E::InvalidPlan { .. }
            | E::PartsOverlap { .. }
            | E::PlanNotFound { .. }
            | E::PlanIncomplete { .. }
            | E::NodeExists { .. }
            | E::NotAHierarchy { .. } => CliError::usage(e.to_string()),
            _ => CliError::failure(e.to_string()),
        }
    }
}

/// Result type of the CLI's fallible functions.
pub type CliResult<T> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_exit_codes() {
        let bad_name: CliError = zarrtx::ElementName::new("a b").unwrap_err().into();
        assert_eq!(bad_name.code, EXIT_USAGE);
        assert!(bad_name.message.contains("'a b'"), "{}", bad_name.message);

        let full: CliError = zarrtx::Error::StorageFull { path: "/x".into() }.into();
        assert_eq!(full.code, EXIT_FAILURE);

        let not_store: CliError = zarrtx::Error::NotAStore {
            path: "/nope".into(),
            reason: "no zarr.json".into(),
        }
        .into();
        assert_eq!(not_store.code, EXIT_USAGE);
        assert!(not_store.message.contains("zarrtx init"));
    }
}
