//! Downsampling kernels for pyramids: each output element reduces one window of `factors` input elements, by
//! mean (images) or mode (labels). Output extents are `floor(input / factor)`; trailing input elements that do not
//! fill a window are dropped (xarray `coarsen(boundary="trim")`, as spatialdata's multiscale code does).

use super::pixel::Pixel;
use ndarray::{ArrayD, IxDyn, ShapeError};
use rayon::prelude::*;
use std::borrow::Cow;
use std::cmp::Ordering;

/// How a window of values becomes one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reduce {
    /// Arithmetic mean computed in `f64`, rounded (half away from zero) and saturated back to the type.
    Mean,
    /// The most frequent value; ties go to the smallest value. Used for labels so that no new label ids appear.
    Mode,
}

/// The elements of `a` in C order, borrowed when `a` is in standard layout.
pub(crate) fn c_order<T: Copy>(a: &ArrayD<T>) -> Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().copied().collect()),
    }
}

fn mean<T: Pixel>(values: &[T]) -> T {
    let sum: f64 = values.iter().map(|v| v.to_f64()).sum();
    T::from_f64(sum / values.len() as f64)
}

fn mode<T: Pixel>(values: &mut [T]) -> T {
    let first = values[0];
    if values.iter().all(|v| *v == first) {
        return first;
    }
    values.sort_unstable_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    let (mut best, mut best_n) = (values[0], 0usize);
    let mut i = 0;
    while i < values.len() {
        let v = values[i];
        let mut j = i + 1;
        while j < values.len() && values[j] == v {
            j += 1;
        }
        if j - i > best_n {
            best = v;
            best_n = j - i;
        }
        i = j;
    }
    best
}

/// Downsamples `input` by `factors` (one per axis, 1 = unchanged) with `reduce`. Parallel over output rows.
pub(crate) fn downsample<T: Pixel>(input: &ArrayD<T>, factors: &[u64], reduce: Reduce) -> Result<ArrayD<T>, ShapeError> {
    let in_shape = input.shape().to_vec();
    let n = in_shape.len();
    let f: Vec<usize> = factors.iter().map(|&f| f.max(1) as usize).collect();
    let out_shape: Vec<usize> = in_shape.iter().zip(&f).map(|(&d, &f)| d / f).collect();
    let total: usize = out_shape.iter().product();
    if n == 0 || total == 0 {
        return ArrayD::from_shape_vec(IxDyn(&out_shape), vec![T::default(); total]);
    }
    let src = c_order(input);
    let mut in_strides = vec![1usize; n];
    for i in (0..n - 1).rev() {
        in_strides[i] = in_strides[i + 1] * in_shape[i + 1];
    }
    // Flat offsets of every element of a window relative to its first element.
    let mut offsets = vec![0usize];
    for axis in 0..n {
        let mut next = Vec::with_capacity(offsets.len() * f[axis]);
        for &o in &offsets {
            for k in 0..f[axis] {
                next.push(o + k * in_strides[axis]);
            }
        }
        offsets = next;
    }
    let out_x = out_shape[n - 1];
    let fx = f[n - 1];
    let outer = &out_shape[..n - 1];
    let mut out = vec![T::default(); total];
    out.par_chunks_mut(out_x).enumerate().for_each(|(row, dst)| {
        // Multi-index of this row over the outer axes.
        let mut rem = row;
        let mut base = 0usize;
        for axis in (0..n - 1).rev() {
            let o = rem % outer[axis];
            rem /= outer[axis];
            base += o * f[axis] * in_strides[axis];
        }
        let mut window: Vec<T> = Vec::with_capacity(offsets.len());
        for (ox, d) in dst.iter_mut().enumerate() {
            let origin = base + ox * fx;
            window.clear();
            window.extend(offsets.iter().map(|&o| src[origin + o]));
            *d = match reduce {
                Reduce::Mean => mean(&window),
                Reduce::Mode => mode(&mut window),
            };
        }
    });
    ArrayD::from_shape_vec(IxDyn(&out_shape), out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn mean_2x2_with_trim_and_rounding() {
        // 3x5 -> 1x2 with factor 2 (last row and column trimmed)
        let a = array![[1u8, 2, 3, 4, 100], [3, 5, 5, 6, 100], [9, 9, 9, 9, 9]].into_dyn();
        let d = downsample(&a, &[2, 2], Reduce::Mean).unwrap();
        // (1+2+3+5)/4 = 2.75 -> 3 ; (3+4+5+6)/4 = 4.5 -> 5 (half away from zero)
        assert_eq!(d, array![[3u8, 5]].into_dyn());
    }

    #[test]
    fn mean_keeps_channel_axis() {
        let a = ArrayD::from_shape_vec(IxDyn(&[2, 2, 2]), vec![0.0f32, 2.0, 4.0, 6.0, 10.0, 10.0, 10.0, 30.0]).unwrap();
        let d = downsample(&a, &[1, 2, 2], Reduce::Mean).unwrap();
        assert_eq!(d.shape(), &[2, 1, 1]);
        assert_eq!(d.as_slice().unwrap(), &[3.0, 15.0]);
    }

    #[test]
    fn mode_picks_most_frequent_then_smallest() {
        let a = array![[7u32, 7, 1, 2], [7, 3, 2, 1], [0, 0, 5, 5], [4, 4, 5, 5]].into_dyn();
        let d = downsample(&a, &[2, 2], Reduce::Mode).unwrap();
        // windows: {7,7,7,3}->7 ; {1,2,2,1} tie -> 1 ; {0,0,4,4} tie -> 0 ; {5,5,5,5} -> 5
        assert_eq!(d, array![[7u32, 1], [0, 5]].into_dyn());
    }

    #[test]
    fn mode_3d_factor_3() {
        let mut v = vec![9i16; 27];
        v[0] = 1;
        v[5] = 1;
        let a = ArrayD::from_shape_vec(IxDyn(&[3, 3, 3]), v).unwrap();
        let d = downsample(&a, &[3, 3, 3], Reduce::Mode).unwrap();
        assert_eq!(d.as_slice().unwrap(), &[9i16]);
    }

    #[test]
    fn non_standard_layout_input() {
        let a = array![[1u16, 3], [5, 7]].into_dyn();
        let t = a.t().to_owned(); // still standard after to_owned; use a reversed view instead
        let rev = a.clone().reversed_axes();
        assert_eq!(downsample(&rev, &[2, 2], Reduce::Mean).unwrap().as_slice().unwrap(), &[4u16]);
        assert_eq!(t.shape(), &[2, 2]);
    }
}
