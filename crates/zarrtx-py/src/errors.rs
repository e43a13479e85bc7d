//! Engine errors as the exception classes of `zarrtx.errors` (defined in Python so that they pickle by name and
//! document themselves); the message is the engine's, which names the element and the fix.

use pyo3::prelude::*;
use pyo3::types::PyString;
use zarrtx::Error;

/// The `zarrtx.errors` class name for an engine error.
fn class_name(err: &Error) -> &'static str {
    match err {
        Error::ElementExists { .. } | Error::NodeExists { .. } => "ElementExists",
        Error::ElementNotFound { .. } => "ElementNotFound",
        Error::InvalidName { .. } | Error::InvalidElement { .. } => "InvalidElement",
        Error::InvalidPlan { .. } | Error::PartsOverlap { .. } => "InvalidElement",
        Error::PlanNotFound { .. } => "ElementNotFound",
        Error::Conflict { .. } | Error::Contention { .. } | Error::PlanIncomplete { .. } => "Conflict",
        Error::VersionNotAvailable { .. } => "VersionNotAvailable",
        Error::LockTimeout { .. } => "LockTimeout",
        Error::CorruptMetadata { .. }
        | Error::NotAStore { .. }
        | Error::NotAHierarchy { .. }
        | Error::Unsupported { .. }
        | Error::UnsafeMedium { .. }
        | Error::ReadOnly { .. }
        | Error::StorageFull { .. }
        | Error::Io { .. }
        | Error::Zarr { .. } => "StorageError",
    }
}

/// Converts an engine error into the matching `zarrtx.errors` exception.
pub fn to_pyerr(err: Error) -> PyErr {
    Python::attach(|py| {
        let message = err.to_string();
        let class = py
            .import("zarrtx.errors")
            .and_then(|m| m.getattr(class_name(&err)));
        match class {
            Ok(class) => match class.call1((PyString::new(py, &message),)) {
                Ok(instance) => PyErr::from_value(instance),
                Err(e) => e,
            },
            // The package is broken (zarrtx.errors missing): still say what the engine said.
            Err(_) => pyo3::exceptions::PyRuntimeError::new_err(message),
        }
    })
}

/// A `zarrtx.InvalidElement` raised by the boundary itself (a value of the wrong Python type or shape).
pub fn invalid(element: &str, reason: impl std::fmt::Display) -> PyErr {
    to_pyerr(Error::InvalidElement { name: element.to_string(), reason: reason.to_string() })
}

/// Extension for engine results: `.py()?` converts the error.
pub trait IntoPy<T> {
    /// Converts an engine result into a Python result.
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for zarrtx::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_pyerr)
    }
}

/// Keeps the first Python exception raised by Python code the engine called back (a block iterator), so that the
/// caller re-raises it unchanged instead of the engine's generic error.
#[derive(Default)]
pub struct PyFailure(std::sync::Mutex<Option<PyErr>>);

impl PyFailure {
    /// Records `err` unless an earlier one is kept; returns its message for the engine-side error.
    pub fn record(&self, err: PyErr) -> String {
        let message = err.to_string();
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(err);
        }
        message
    }

    /// The recorded Python exception if there is one, else `err` converted.
    pub fn or_engine_error(&self, err: Error) -> PyErr {
        self.0.lock().ok().and_then(|mut slot| slot.take()).unwrap_or_else(|| to_pyerr(err))
    }
}
