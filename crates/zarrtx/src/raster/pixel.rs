//! The element types a raster may hold, as one generic trait, plus the macro that turns a runtime
//! [`DataType`](super::DataType) into a type parameter.

use super::RasterArray;
use ndarray::ArrayD;
use zarrs::array::{Element, ElementOwned};

/// An element type of a raster: what the generic kernels (downsampling, region reads) need.
pub(crate) trait Pixel:
    Element + ElementOwned + Copy + Default + PartialEq + PartialOrd + Send + Sync + 'static
{
    /// The value as `f64` (booleans as 0/1).
    fn to_f64(self) -> f64;
    /// The nearest representable value (rounded half away from zero and saturated for integers).
    fn from_f64(v: f64) -> Self;
    /// Wraps a typed array.
    fn wrap(a: ArrayD<Self>) -> RasterArray;
    /// The values' bytes in native (little-endian) order.
    fn as_bytes(v: &[Self]) -> &[u8];
    /// The values' bytes in native order, reusing the allocation when possible.
    fn into_bytes(v: Vec<Self>) -> Vec<u8>;
}

macro_rules! bytes_fns {
    () => {
        fn as_bytes(v: &[Self]) -> &[u8] {
            zarrs::array::transmute_to_bytes(v)
        }
        fn into_bytes(v: Vec<Self>) -> Vec<u8> {
            zarrs::array::transmute_to_bytes_vec(v)
        }
    };
}

macro_rules! impl_pixel_int {
    ($($t:ty => $variant:ident),*) => {$(
        impl Pixel for $t {
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                // `as` saturates at the type's bounds and maps NaN to 0.
                v.round() as $t
            }
            fn wrap(a: ArrayD<Self>) -> RasterArray {
                RasterArray::$variant(a)
            }
            bytes_fns!();
        }
    )*};
}

impl_pixel_int!(u8 => U8, u16 => U16, u32 => U32, u64 => U64, i8 => I8, i16 => I16, i32 => I32, i64 => I64);

impl Pixel for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn wrap(a: ArrayD<Self>) -> RasterArray {
        RasterArray::F32(a)
    }
    bytes_fns!();
}

impl Pixel for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
    fn wrap(a: ArrayD<Self>) -> RasterArray {
        RasterArray::F64(a)
    }
    bytes_fns!();
}

impl Pixel for bool {
    fn to_f64(self) -> f64 {
        if self {
            1.0
        } else {
            0.0
        }
    }
    fn from_f64(v: f64) -> Self {
        v >= 0.5
    }
    fn wrap(a: ArrayD<Self>) -> RasterArray {
        RasterArray::Bool(a)
    }
    bytes_fns!();
}

/// Evaluates `$body` with `$T` bound (as a type alias) to the Rust type of the [`DataType`](super::DataType)
/// `$dt`.
macro_rules! with_pixel_type {
    ($dt:expr, $T:ident => $body:expr) => {
        match $dt {
            $crate::raster::DataType::Bool => {
                type $T = bool;
                $body
            }
            $crate::raster::DataType::U8 => {
                type $T = u8;
                $body
            }
            $crate::raster::DataType::U16 => {
                type $T = u16;
                $body
            }
            $crate::raster::DataType::U32 => {
                type $T = u32;
                $body
            }
            $crate::raster::DataType::U64 => {
                type $T = u64;
                $body
            }
            $crate::raster::DataType::I8 => {
                type $T = i8;
                $body
            }
            $crate::raster::DataType::I16 => {
                type $T = i16;
                $body
            }
            $crate::raster::DataType::I32 => {
                type $T = i32;
                $body
            }
            $crate::raster::DataType::I64 => {
                type $T = i64;
                $body
            }
            $crate::raster::DataType::F32 => {
                type $T = f32;
                $body
            }
            $crate::raster::DataType::F64 => {
                type $T = f64;
                $body
            }
        }
    };
}
pub(crate) use with_pixel_type;

/// Calls `f` with the bytes of `a` in C order (borrowed when `a` is already in standard layout).
pub(crate) fn with_bytes<R>(a: &RasterArray, f: impl FnOnce(&[u8]) -> R) -> R {
    crate::with_raster_array!(a, arr => {
        let std = arr.as_standard_layout();
        match std.as_slice() {
            Some(s) => f(zarrs::array::transmute_to_bytes(s)),
            // A standard-layout array always has a slice; this arm only keeps the code free of unwrap.
            None => {
                let v: Vec<_> = std.iter().copied().collect();
                f(zarrs::array::transmute_to_bytes(&v))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_f64_rounds_and_saturates() {
        assert_eq!(u8::from_f64(2.5), 3);
        assert_eq!(u8::from_f64(300.0), 255);
        assert_eq!(i8::from_f64(-2.5), -3);
        assert_eq!(u16::from_f64(-1.0), 0);
        assert!(bool::from_f64(0.5));
        assert!(!bool::from_f64(0.25));
    }
}
