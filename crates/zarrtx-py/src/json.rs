//! Plain Python values ⇄ JSON values (through Python's `json` module), and coordinate transformations as the
//! lists of NGFF dicts spatialdata 0.8 stores.

use crate::errors::invalid;
use pyo3::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use zarrtx::transform::{from_ngff_json, to_ngff_json};
use zarrtx::Transformation;

/// A Python value (dicts, lists, str, numbers, bool, None) as JSON.
pub fn to_json(obj: &Bound<'_, PyAny>, element: &str, what: &str) -> PyResult<Value> {
    let text: String = obj
        .py()
        .import("json")?
        .call_method1("dumps", (obj,))
        .map_err(|e| invalid(element, format!("{what} is not JSON-like: {e}")))?
        .extract()?;
    serde_json::from_str(&text).map_err(|e| invalid(element, format!("{what}: {e}")))
}

/// A JSON value as a Python value.
pub fn from_json<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (value.to_string(),))
}

/// Transformations from a list of NGFF dicts (`None` or empty: identity into `global`).
pub fn transformations_from_py(
    obj: Option<&Bound<'_, PyAny>>,
    element: &str,
) -> PyResult<BTreeMap<String, Transformation>> {
    let mut out = BTreeMap::new();
    let Some(obj) = obj else { return Ok(out) };
    if obj.is_none() {
        return Ok(out);
    }
    let Value::Array(items) = to_json(obj, element, "transformations")? else {
        return Err(invalid(element, "transformations must be a list of NGFF transformation dicts"));
    };
    for item in &items {
        let (cs, t) = from_ngff_json(&item).map_err(|e| invalid(element, format!("transformation {item}: {e}")))?;
        if out.insert(cs.clone(), t).is_some() {
            return Err(invalid(element, format!("two transformations into coordinate system '{cs}'; give one per system")));
        }
    }
    Ok(out)
}

/// Transformations as a list of NGFF dicts over `axes`.
pub fn transformations_to_py<'py>(
    py: Python<'py>,
    transformations: &BTreeMap<String, Transformation>,
    axes: &[String],
) -> PyResult<Bound<'py, PyAny>> {
    let axes: Vec<&str> = axes.iter().map(String::as_str).collect();
    let list: Vec<Value> = transformations.iter().map(|(cs, t)| to_ngff_json(t, &axes, cs)).collect();
    from_json(py, &Value::Array(list))
}
