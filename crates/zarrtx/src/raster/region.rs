//! Copying boxes between C-order byte buffers of n-dimensional arrays, one contiguous run (`memcpy`) at a time.
//! Element-type agnostic: every element is `esize` bytes.

/// A box inside an array: `start` and `size` per axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Region {
    /// First index per axis.
    pub start: Vec<u64>,
    /// Extent per axis.
    pub size: Vec<u64>,
}

impl Region {
    /// The box `[start, start + size)`.
    pub fn new(start: Vec<u64>, size: Vec<u64>) -> Self {
        Region { start, size }
    }

    /// Exclusive end per axis.
    pub fn end(&self) -> Vec<u64> {
        self.start.iter().zip(&self.size).map(|(s, n)| s + n).collect()
    }

    /// Number of elements.
    pub fn num_elements(&self) -> u64 {
        self.size.iter().product()
    }

    /// The intersection with `other`, or `None` when empty.
    pub fn intersect(&self, other: &Region) -> Option<Region> {
        let mut start = Vec::with_capacity(self.start.len());
        let mut size = Vec::with_capacity(self.start.len());
        for i in 0..self.start.len() {
            let s = self.start[i].max(other.start[i]);
            let e = (self.start[i] + self.size[i]).min(other.start[i] + other.size[i]);
            if e <= s {
                return None;
            }
            start.push(s);
            size.push(e - s);
        }
        Some(Region { start, size })
    }

    /// The same box with `origin` subtracted from its start (`origin <= start` per axis).
    pub fn relative_to(&self, origin: &[u64]) -> Region {
        Region {
            start: self.start.iter().zip(origin).map(|(s, o)| s - o).collect(),
            size: self.size.clone(),
        }
    }
}

fn strides(shape: &[u64]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as usize;
    }
    s
}

/// Copies the box `size` at `src_start` of the array `src` (shape `src_shape`) to `dst_start` of the array `dst`
/// (shape `dst_shape`). Both buffers are C order with `esize` bytes per element; the boxes must lie inside
/// their arrays.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_box(
    src: &[u8],
    src_shape: &[u64],
    src_start: &[u64],
    dst: &mut [u8],
    dst_shape: &[u64],
    dst_start: &[u64],
    size: &[u64],
    esize: usize,
) {
    let n = size.len();
    if n == 0 {
        dst[..esize].copy_from_slice(&src[..esize]);
        return;
    }
    if size.contains(&0) {
        return;
    }
    // The innermost contiguous run spans axes j..n: every axis after j is full in both arrays.
    let mut j = n - 1;
    let mut run = size[n - 1] as usize;
    while j > 0 && size[j] == src_shape[j] && size[j] == dst_shape[j] {
        j -= 1;
        run *= size[j] as usize;
    }
    let run_bytes = run * esize;
    let ss = strides(src_shape);
    let ds = strides(dst_shape);
    let base = |start: &[u64], st: &[usize]| -> usize {
        start.iter().zip(st).map(|(&a, &b)| a as usize * b).sum()
    };
    let src_base = base(src_start, &ss);
    let dst_base = base(dst_start, &ds);
    // Odometer over the axes before j.
    let mut idx = vec![0u64; j];
    loop {
        let mut so = src_base;
        let mut d_o = dst_base;
        for (i, &k) in idx.iter().enumerate() {
            so += k as usize * ss[i];
            d_o += k as usize * ds[i];
        }
        let (so, d_o) = (so * esize, d_o * esize);
        dst[d_o..d_o + run_bytes].copy_from_slice(&src[so..so + run_bytes]);
        // advance
        let mut axis = j;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            idx[axis] += 1;
            if idx[axis] < size[axis] {
                break;
            }
            idx[axis] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_inner_box() {
        // src 3x4 of u8 0..12, copy rows 1..3, cols 1..3 into a 2x2 dst
        let src: Vec<u8> = (0..12).collect();
        let mut dst = vec![0u8; 4];
        copy_box(&src, &[3, 4], &[1, 1], &mut dst, &[2, 2], &[0, 0], &[2, 2], 1);
        assert_eq!(dst, vec![5, 6, 9, 10]);
    }

    #[test]
    fn copies_full_rows_as_one_run_with_padding() {
        let src: Vec<u8> = (0..8).collect(); // 2x2x2
        let mut dst = vec![0u8; 3 * 2 * 2];
        copy_box(&src, &[2, 2, 2], &[0, 0, 0], &mut dst, &[3, 2, 2], &[1, 0, 0], &[2, 2, 2], 1);
        assert_eq!(dst, vec![0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn multi_byte_elements() {
        let src: Vec<u16> = (0..6).collect(); // 2x3
        let bytes: Vec<u8> = src.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let mut dst = vec![0u8; 2 * 2 * 2];
        copy_box(&bytes, &[2, 3], &[0, 1], &mut dst, &[2, 2], &[0, 0], &[2, 2], 2);
        let got: Vec<u16> = dst.chunks(2).map(|c| u16::from_ne_bytes([c[0], c[1]])).collect();
        assert_eq!(got, vec![1, 2, 4, 5]);
    }

    #[test]
    fn box_intersection() {
        let a = Region::new(vec![0, 0], vec![4, 4]);
        let b = Region::new(vec![2, 3], vec![4, 4]);
        assert_eq!(a.intersect(&b), Some(Region::new(vec![2, 3], vec![2, 1])));
        assert_eq!(a.intersect(&Region::new(vec![4, 0], vec![1, 1])), None);
    }
}
