//! Splitting level 0 into parts of whole write units, and checking explicit parts.

use super::{region_text, PartLayout};
use crate::error::{Error, Result};
use crate::name::ElementName;
use std::ops::Range;

/// The parts of a plan for an array of `shape` with write unit `unit` and axes `dims`, laid out as `layout` asks.
/// Refuses (typed, naming the parts and the fix) anything that would let two writers write one file.
pub(crate) fn layout_parts(
    name: &ElementName,
    dims: &[String],
    shape: &[u64],
    unit: &[u64],
    layout: PartLayout,
) -> Result<Vec<Vec<Range<u64>>>> {
    let invalid = |reason: String| Error::InvalidPlan { name: name.to_string(), reason };
    match layout {
        PartLayout::Count(n) => {
            let grid: Vec<u64> = shape.iter().zip(unit).map(|(&s, &u)| s.div_ceil(u.max(1))).collect();
            let units: u64 = grid.iter().product();
            if n == 0 {
                return Err(invalid("a plan needs at least one part: ask for 1 or more parts".into()));
            }
            if n as u64 > units {
                return Err(invalid(format!(
                    "{n} parts were asked for but the array has only {units} write units ({} of shape {unit:?} \
                     over shape {shape:?}), and a unit is never split between writers: ask for at most {units} \
                     parts, or use smaller chunks/shards",
                    grid_text(&grid),
                )));
            }
            let order = axis_order(dims);
            let whole: Vec<Range<u64>> = grid.iter().map(|&g| 0..g).collect();
            let mut out = Vec::with_capacity(n);
            split(&whole, &order, n as u64, &mut out);
            Ok(out
                .into_iter()
                .map(|cells| {
                    cells
                        .iter()
                        .zip(unit)
                        .zip(shape)
                        .map(|((c, &u), &s)| (c.start * u)..(c.end * u).min(s))
                        .collect()
                })
                .collect())
        }
        PartLayout::Regions(parts) => {
            if parts.is_empty() {
                return Err(invalid("no parts were given: give at least one region".into()));
            }
            for (i, p) in parts.iter().enumerate() {
                check_region(i, p, dims, shape, unit).map_err(invalid)?;
            }
            check_disjoint(name, &parts)?;
            Ok(parts)
        }
    }
}

fn grid_text(grid: &[u64]) -> String {
    grid.iter().map(u64::to_string).collect::<Vec<_>>().join(" × ")
}

/// Axes in the order parts are cut along: the spatial axes (`z`, `y`, `x`) in order, then the channel axis.
fn axis_order(dims: &[String]) -> Vec<usize> {
    let spatial = (0..dims.len()).filter(|&i| dims[i] != "c");
    let channel = (0..dims.len()).filter(|&i| dims[i] == "c");
    spatial.chain(channel).collect()
}

/// Splits `cells` (a box of write units) into `n` boxes (`n` ≤ the box's unit count), cutting along `order[0]`
/// first: into `n` balanced slabs when it has at least `n` unit rows, else into one slab per row with the parts
/// shared out among the rows (the first rows get one more) and each row split along the next axes.
fn split(cells: &[Range<u64>], order: &[usize], n: u64, out: &mut Vec<Vec<Range<u64>>>) {
    if n <= 1 {
        out.push(cells.to_vec());
        return;
    }
    let Some((&axis, rest)) = order.split_first() else {
        // Unreachable while n ≤ units: a single unit is never asked to hold several parts.
        out.push(cells.to_vec());
        return;
    };
    let r = cells[axis].clone();
    let rows = r.end - r.start;
    if rows <= 1 {
        split(cells, rest, n, out);
        return;
    }
    let with_axis = |lo: u64, hi: u64| {
        let mut b = cells.to_vec();
        b[axis] = lo..hi;
        b
    };
    if n <= rows {
        let (base, extra) = (rows / n, rows % n);
        let mut at = r.start;
        for k in 0..n {
            let len = base + u64::from(k < extra);
            out.push(with_axis(at, at + len));
            at += len;
        }
    } else {
        let (base, extra) = (n / rows, n % rows);
        for (k, row) in (r.start..r.end).enumerate() {
            let parts = base + u64::from((k as u64) < extra);
            split(&with_axis(row, row + 1), rest, parts, out);
        }
    }
}

/// Checks one explicit part: one non-empty range per axis, inside the array, on write-unit boundaries.
fn check_region(i: usize, p: &[Range<u64>], dims: &[String], shape: &[u64], unit: &[u64]) -> Result<(), String> {
    if p.len() != shape.len() {
        return Err(format!(
            "part {i} {} has {} ranges but the array has {} axes {dims:?}: give one start..end per axis",
            region_text(p),
            p.len(),
            shape.len()
        ));
    }
    for (a, r) in p.iter().enumerate() {
        let (n, u) = (shape[a], unit[a].max(1));
        if r.start >= r.end || r.end > n {
            return Err(format!(
                "part {i} {} is empty or outside the array along axis '{}' ({}..{} with size {n}): every range \
                 needs start < end <= size",
                region_text(p),
                dims[a],
                r.start,
                r.end
            ));
        }
        if r.start % u != 0 || (r.end % u != 0 && r.end != n) {
            return Err(format!(
                "part {i} {} is not aligned to the write units along axis '{}': the array is written in units of \
                 {unit:?} (shards when sharded, else chunks), so start and end must be multiples of {u} (or end at \
                 the edge, {n}); a unit shared by two parts would be written by two workers. Align the part, or \
                 let the plan split the array with a part count",
                region_text(p),
                dims[a]
            ));
        }
    }
    Ok(())
}

/// Refuses the first pair of overlapping parts.
fn check_disjoint(name: &ElementName, parts: &[Vec<Range<u64>>]) -> Result<()> {
    // Sorted by start along the first axis, a part can only overlap later parts that start before it ends.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| parts[i].first().map(|r| r.start).unwrap_or(0));
    for (k, &i) in order.iter().enumerate() {
        let end0 = parts[i].first().map(|r| r.end).unwrap_or(0);
        for &j in &order[k + 1..] {
            if parts[j].first().map(|r| r.start).unwrap_or(0) >= end0 {
                break;
            }
            let overlap: Option<Vec<Range<u64>>> = parts[i]
                .iter()
                .zip(&parts[j])
                .map(|(a, b)| {
                    let (s, e) = (a.start.max(b.start), a.end.min(b.end));
                    (s < e).then_some(s..e)
                })
                .collect();
            if let Some(overlap) = overlap {
                let (first, second) = (i.min(j), i.max(j));
                return Err(Error::PartsOverlap {
                    name: name.to_string(),
                    first,
                    second,
                    overlap: region_text(&overlap),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(d: &[&str]) -> Vec<String> {
        d.iter().map(|s| s.to_string()).collect()
    }

    fn name() -> ElementName {
        ElementName::new("img").unwrap()
    }

    fn count(d: &[&str], shape: &[u64], unit: &[u64], n: usize) -> Vec<Vec<Range<u64>>> {
        layout_parts(&name(), &dims(d), shape, unit, PartLayout::Count(n)).unwrap()
    }

    /// Every element of the array is in exactly one part, and every part is aligned.
    fn assert_tiles(parts: &[Vec<Range<u64>>], shape: &[u64], unit: &[u64]) {
        let total: u64 = shape.iter().product();
        let covered: u64 = parts.iter().map(|p| p.iter().map(|r| r.end - r.start).product::<u64>()).sum();
        assert_eq!(covered, total);
        for (i, p) in parts.iter().enumerate() {
            check_region(i, p, &dims(&["c", "y", "x"][3 - shape.len()..]), shape, unit).unwrap();
        }
        check_disjoint(&name(), parts).unwrap();
    }

    #[test]
    fn count_splits_rows_first_then_columns() {
        let p = count(&["c", "y", "x"], &[3, 100, 90], &[3, 32, 32], 4);
        // 4 unit rows along y: one part each, whole x and c.
        assert_eq!(p, vec![vec![0..3, 0..32, 0..90], vec![0..3, 32..64, 0..90], vec![0..3, 64..96, 0..90], vec![0..3, 96..100, 0..90]]);
        assert_tiles(&p, &[3, 100, 90], &[3, 32, 32]);

        let p = count(&["c", "y", "x"], &[3, 100, 90], &[3, 32, 32], 3);
        assert_eq!(p.iter().map(|p| p[1].clone()).collect::<Vec<_>>(), vec![0..64, 64..96, 96..100]);

        // 6 parts over 4 rows: the first two rows are split along x.
        let p = count(&["c", "y", "x"], &[3, 100, 90], &[3, 32, 32], 6);
        assert_eq!(p.len(), 6);
        assert_eq!(p[0], vec![0..3, 0..32, 0..64]);
        assert_eq!(p[1], vec![0..3, 0..32, 64..90]);
        assert_tiles(&p, &[3, 100, 90], &[3, 32, 32]);

        // Every unit its own part.
        let p = count(&["y", "x"], &[100, 90], &[32, 32], 12);
        assert_eq!(p.len(), 12);
        assert_tiles(&p, &[100, 90], &[32, 32]);
    }

    #[test]
    fn count_uses_z_first_and_channels_last() {
        let p = count(&["c", "z", "y", "x"], &[2, 4, 8, 8], &[1, 1, 8, 8], 8);
        assert_eq!(p.len(), 8);
        // 4 z planes, then 2 channel slabs per plane.
        assert_eq!(p[0], vec![0..1, 0..1, 0..8, 0..8]);
        assert_eq!(p[1], vec![1..2, 0..1, 0..8, 0..8]);
        assert_eq!(p[2], vec![0..1, 1..2, 0..8, 0..8]);
    }

    #[test]
    fn count_refuses_zero_and_too_many() {
        for n in [0, 13] {
            match layout_parts(&name(), &dims(&["y", "x"]), &[100, 90], &[32, 32], PartLayout::Count(n)) {
                Err(Error::InvalidPlan { name, reason }) => {
                    assert_eq!(name, "img");
                    assert!(reason.contains("part"), "{reason}");
                }
                other => panic!("{n}: {other:?}"),
            }
        }
    }

    #[test]
    fn regions_must_be_aligned_inside_and_disjoint() {
        let d = dims(&["y", "x"]);
        let ok = vec![vec![0..32, 0..90], vec![32..100, 0..64], vec![32..100, 64..90]];
        assert_eq!(layout_parts(&name(), &d, &[100, 90], &[32, 32], PartLayout::Regions(ok.clone())).unwrap(), ok);
        for (bad, needle) in [
            (vec![vec![0..30, 0..90]], "not aligned"),
            (vec![vec![0..32, 0..91]], "outside"),
            (vec![vec![0..32]], "one start..end per axis"),
            (vec![vec![32..32, 0..90]], "empty"),
            (vec![], "no parts"),
        ] {
            match layout_parts(&name(), &d, &[100, 90], &[32, 32], PartLayout::Regions(bad)) {
                Err(Error::InvalidPlan { reason, .. }) => assert!(reason.contains(needle), "{reason}"),
                other => panic!("{needle}: {other:?}"),
            }
        }
        let overlapping = vec![vec![0..64, 0..90], vec![64..100, 0..90], vec![32..64, 32..64]];
        match layout_parts(&name(), &d, &[100, 90], &[32, 32], PartLayout::Regions(overlapping)) {
            Err(Error::PartsOverlap { first, second, overlap, .. }) => {
                assert_eq!((first, second), (0, 2));
                assert_eq!(overlap, "[32..64, 32..64]");
            }
            other => panic!("{other:?}"),
        }
    }
}
