//! numpy arrays ⇄ the engine's [`RasterArray`]: numpy → engine copies (the engine owns its arrays; large inputs are
//! fed as row slabs instead, see `raster_input`), engine → numpy hands the Rust allocation to numpy without a copy.

use crate::errors::invalid;
use numpy::{IntoPyArray, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use zarrtx::{with_raster_array, DataType, RasterArray};

/// Calls `$body` with `$arr` bound to the input cast to the numpy array type of its dtype, `$variant` to the
/// matching [`RasterArray`] constructor; falls through to `$otherwise` for unsupported dtypes.
macro_rules! with_numpy_dtype {
    ($obj:expr, $arr:ident, $variant:ident => $body:expr, $otherwise:expr) => {{
        let obj = $obj;
        if let Ok($arr) = obj.cast::<::numpy::PyArrayDyn<bool>>() {
            let $variant = ::zarrtx::RasterArray::Bool;
            $body
        } else if let Ok($arr) = obj.cast::<::numpy::PyArrayDyn<u8>>() {
            let $variant = ::zarrtx::RasterArray::U8;
            $body
        } else if let Ok($arr) = obj.cast::<::numpy::PyArrayDyn<u16>>() {
            let $variant = ::zarrtx::RasterArray::U16;
            $body
        } else if let Ok($arr) = obj.cast::<::numpy::PyArrayDyn<u32>>() {
            let $variant = ::zarrtx::RasterArray::U32;
            $body
        } else if let Ok($arr) = obj.cast::<::numpy::PyArrayDyn<u64>>() {
            let $variant = ::zarrtx::RasterArray::U64;
            $body
        } else if let Ok($arr) = obj.cast::<::numpy::PyArrayDyn<i8>>() {
            let $variant = ::zarrtx::RasterArray::I8;
            $body
        } else if let Ok($arr) = obj.cast::<::numpy::PyArrayDyn<i16>>() {
            let $variant = ::zarrtx::RasterArray::I16;
            $body
        } else if let Ok($arr) = obj.cast::<::numpy::PyArrayDyn<i32>>() {
            let $variant = ::zarrtx::RasterArray::I32;
            $body
        } else if let Ok($arr) = obj.cast::<::numpy::PyArrayDyn<i64>>() {
            let $variant = ::zarrtx::RasterArray::I64;
            $body
        } else if let Ok($arr) = obj.cast::<::numpy::PyArrayDyn<f32>>() {
            let $variant = ::zarrtx::RasterArray::F32;
            $body
        } else if let Ok($arr) = obj.cast::<::numpy::PyArrayDyn<f64>>() {
            let $variant = ::zarrtx::RasterArray::F64;
            $body
        } else {
            $otherwise
        }
    }};
}
pub(crate) use with_numpy_dtype;

/// Describes a Python value for error messages: its type and, for arrays, dtype and shape.
pub fn describe(obj: &Bound<'_, PyAny>) -> String {
    if let Ok(arr) = obj.cast::<PyUntypedArray>() {
        let dtype = arr.dtype().str().map(|s| s.to_string()).unwrap_or_else(|_| "?".into());
        format!("a numpy array of dtype {dtype} and shape {:?}", arr.shape())
    } else {
        let ty = obj.get_type().name().map(|s| s.to_string()).unwrap_or_else(|_| "?".into());
        format!("a value of type {ty}")
    }
}

/// Copies a numpy array (any layout) into an engine array. `element` and `what` name it in errors.
pub fn to_raster_array(obj: &Bound<'_, PyAny>, element: &str, what: &str) -> PyResult<RasterArray> {
    with_numpy_dtype!(obj, arr, variant => {
        let ro = arr.readonly();
        Ok(variant(ro.as_array().to_owned()))
    }, Err(invalid(element, format!(
        "{what} must be a numpy array of bool, (u)int8..64 or float32/64, got {}; convert it with numpy.asarray(..., dtype=...)",
        describe(obj)
    ))))
}

/// Hands an engine array to numpy (no copy).
pub fn to_numpy<'py>(py: Python<'py>, array: RasterArray) -> Bound<'py, PyAny> {
    with_raster_array!(array, a => a.into_pyarray(py).into_any())
}

/// The engine dtype of a numpy array, or `None` for unsupported dtypes.
pub fn data_type_of(obj: &Bound<'_, PyAny>) -> Option<DataType> {
    with_numpy_dtype!(obj, _arr, variant => Some(variant_type(variant)), None)
}

/// The [`DataType`] a `RasterArray` constructor produces.
fn variant_type<T: Default + Clone>(variant: fn(ndarray::ArrayD<T>) -> RasterArray) -> DataType {
    variant(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[0]), T::default())).data_type()
}

/// Converts a 1-D integer numpy array (any integer dtype) to `i64`s.
pub fn to_i64_vec(obj: &Bound<'_, PyAny>, element: &str, what: &str) -> PyResult<Vec<i64>> {
    let arr = to_raster_array(obj, element, what)?;
    let out: Option<Vec<i64>> = match arr {
        RasterArray::I64(a) => Some(a.iter().copied().collect()),
        RasterArray::I32(a) => Some(a.iter().map(|&v| v as i64).collect()),
        RasterArray::I16(a) => Some(a.iter().map(|&v| v as i64).collect()),
        RasterArray::I8(a) => Some(a.iter().map(|&v| v as i64).collect()),
        RasterArray::U8(a) => Some(a.iter().map(|&v| v as i64).collect()),
        RasterArray::U16(a) => Some(a.iter().map(|&v| v as i64).collect()),
        RasterArray::U32(a) => Some(a.iter().map(|&v| v as i64).collect()),
        RasterArray::U64(a) => a.iter().map(|&v| i64::try_from(v).ok()).collect(),
        _ => None,
    };
    out.ok_or_else(|| invalid(element, format!("{what} must be a 1-D integer numpy array, got {}", describe(obj))))
}
