//! pyarrow ⇄ arrow-rs record batches through Arrow's C data interface (`_export_to_c` / `_import_from_c`): no
//! copy of the column buffers in either direction, and no dependency on a particular pyarrow build.

use crate::errors::invalid;
use arrow_array::ffi::{from_ffi, to_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::{Array, RecordBatch, StructArray};
use pyo3::prelude::*;

/// Imports a `pyarrow.RecordBatch` (or anything with `to_batches()`, such as a `pyarrow.Table`, which yields
/// several batches) as arrow-rs record batches. `element` and `what` name the value in errors.
pub fn batches_from_py(obj: &Bound<'_, PyAny>, element: &str, what: &str) -> PyResult<Vec<RecordBatch>> {
    if obj.hasattr("_export_to_c")? && obj.hasattr("num_rows")? && obj.hasattr("schema")? && !obj.hasattr("to_batches")? {
        return Ok(vec![batch_from_py(obj, element, what)?]);
    }
    if obj.hasattr("to_batches")? {
        let mut out = Vec::new();
        for b in obj.call_method0("to_batches")?.try_iter()? {
            out.push(batch_from_py(&b?, element, what)?);
        }
        return Ok(out);
    }
    if let Ok(list) = obj.cast::<pyo3::types::PyList>() {
        let mut out = Vec::new();
        for b in list.iter() {
            out.push(batch_from_py(&b, element, what)?);
        }
        return Ok(out);
    }
    Err(invalid(element, format!("{what} must be a pyarrow RecordBatch or Table, got {}", crate::ndarrays::describe(obj))))
}

/// Imports one `pyarrow.RecordBatch`.
pub fn batch_from_py(obj: &Bound<'_, PyAny>, element: &str, what: &str) -> PyResult<RecordBatch> {
    if !obj.hasattr("_export_to_c")? {
        return Err(invalid(element, format!("{what} must be a pyarrow RecordBatch, got {}", crate::ndarrays::describe(obj))));
    }
    let mut array = Box::new(FFI_ArrowArray::empty());
    let mut schema = Box::new(FFI_ArrowSchema::empty());
    let array_ptr = &mut *array as *mut FFI_ArrowArray as usize;
    let schema_ptr = &mut *schema as *mut FFI_ArrowSchema as usize;
    obj.call_method1("_export_to_c", (array_ptr, schema_ptr))?;
    // SAFETY: pyarrow filled both structs with a valid exported struct array and its schema; `from_ffi` takes
    // ownership of the array (its release callback runs when the data is dropped) and only reads the schema.
    let data = unsafe { from_ffi(*array, &schema) }
        .map_err(|e| invalid(element, format!("{what}: cannot import the Arrow data: {e}")))?;
    let struct_array = StructArray::from(data);
    if struct_array.null_count() > 0 {
        return Err(invalid(element, format!("{what}: a record batch cannot have null rows")));
    }
    Ok(RecordBatch::from(struct_array))
}

/// Exports an arrow-rs record batch as a `pyarrow.RecordBatch`.
pub fn batch_to_py<'py>(py: Python<'py>, batch: &RecordBatch) -> PyResult<Bound<'py, PyAny>> {
    let struct_array = StructArray::from(batch.clone());
    let (array, schema) = to_ffi(&struct_array.to_data())
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(format!("cannot export Arrow data: {e}")))?;
    let mut array = Box::new(array);
    let mut schema = Box::new(schema);
    let array_ptr = &mut *array as *mut FFI_ArrowArray as usize;
    let schema_ptr = &mut *schema as *mut FFI_ArrowSchema as usize;
    let pa = py.import("pyarrow")?;
    // pyarrow moves the structs' contents out (setting their release callbacks to null), so dropping the boxes
    // afterwards frees nothing twice; if the import fails, dropping them releases the data.
    pa.getattr("RecordBatch")?.call_method1("_import_from_c", (array_ptr, schema_ptr))
}
