//! SpatialData coordinate transformations, and their JSON form (the NGFF-like dialect spatialdata 0.8 reads and
//! writes, see `spatialdata-format.md` §6).
//!
//! [`to_ngff_json`] writes one transformation exactly as spatialdata 0.8 does (`type`, its parameters, then the
//! `input` and `output` coordinate systems); [`from_ngff_json`] reads it back, including the forms spatialdata
//! itself writes for affines over permuted axes and `mapAxis`.

use crate::error::{Error, Result};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// A transformation from an element's intrinsic coordinate system to a target coordinate system.
/// Vectors and matrices are over the element's axes (for rasters including `c`, with factor 1 / offset 0).
#[derive(Debug, Clone, PartialEq)]
pub enum Transformation {
    /// No change.
    Identity,
    /// Multiply each axis by a factor (one per axis).
    Scale(Vec<f64>),
    /// Add an offset to each axis (one per axis).
    Translation(Vec<f64>),
    /// An affine map: an `n_out × (n_in + 1)` matrix without the homogeneous last row.
    Affine(Vec<Vec<f64>>),
    /// Several transformations applied in order.
    Sequence(Vec<Transformation>),
}

/// The coordinate-system name spatialdata uses when none is given.
pub const DEFAULT_COORDINATE_SYSTEM: &str = "global";

/// The JSON of a coordinate system named `name` over `axes`, as spatialdata writes it: `c` is a `channel` axis
/// without unit, every other axis is a `space` axis with the placeholder unit `"unit"`.
pub fn coordinate_system_json(name: &str, axes: &[&str]) -> Value {
    let axes: Vec<Value> = axes
        .iter()
        .map(|&a| {
            if a == "c" {
                json!({"name": a, "type": "channel"})
            } else {
                json!({"name": a, "type": "space", "unit": "unit"})
            }
        })
        .collect();
    json!({"name": name, "axes": axes})
}

/// Serializes `t` as spatialdata 0.8 does for an element with intrinsic `axes` (e.g. `["c","y","x"]`), mapping
/// into the coordinate system `target_cs`. The input system is named after the axes joined (`"cyx"`); items of a
/// sequence carry their own `input`/`output` (output named `"global"`, as spatialdata writes them).
/// The caller guarantees that vector lengths match `axes` (see `raster::validate`).
pub fn to_ngff_json(t: &Transformation, axes: &[&str], target_cs: &str) -> Value {
    let mut obj = Map::new();
    match t {
        Transformation::Identity => {
            obj.insert("type".into(), json!("identity"));
        }
        Transformation::Scale(v) => {
            obj.insert("type".into(), json!("scale"));
            obj.insert("scale".into(), json!(v));
        }
        Transformation::Translation(v) => {
            obj.insert("type".into(), json!("translation"));
            obj.insert("translation".into(), json!(v));
        }
        Transformation::Affine(m) => {
            obj.insert("type".into(), json!("affine"));
            obj.insert("affine".into(), json!(m));
        }
        Transformation::Sequence(items) => {
            obj.insert("type".into(), json!("sequence"));
            let inner: Vec<Value> = items
                .iter()
                .map(|i| to_ngff_json(i, axes, DEFAULT_COORDINATE_SYSTEM))
                .collect();
            obj.insert("transformations".into(), Value::Array(inner));
        }
    }
    obj.insert("input".into(), coordinate_system_json(&axes.concat(), axes));
    obj.insert("output".into(), coordinate_system_json(target_cs, axes));
    Value::Object(obj)
}

/// Parses one transformation written by spatialdata (or by [`to_ngff_json`]) and returns the name of its target
/// coordinate system (`output.name`) with the transformation.
///
/// Affines whose output axes are a permutation of the input axes (what spatialdata writes for an `x,y` affine on a
/// `c,y,x` image) are reordered to the input axes; `mapAxis` is converted to the equivalent affine (or identity).
/// Unsupported types (`rotation`, `byDimension`, ...) and malformed documents give
/// [`Error::CorruptMetadata`].
pub fn from_ngff_json(v: &Value) -> Result<(String, Transformation)> {
    let target = output_name(v)?;
    Ok((target, parse(v)?))
}

fn corrupt(reason: impl Into<String>) -> Error {
    Error::CorruptMetadata {
        path: PathBuf::from("coordinateTransformations"),
        reason: reason.into(),
    }
}

fn output_name(v: &Value) -> Result<String> {
    v.get("output")
        .and_then(|o| o.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| corrupt(format!("transformation without an output coordinate system name: {v}")))
}

/// Axis names of the `input` or `output` coordinate system, if present.
fn cs_axes(v: &Value, key: &str) -> Result<Option<Vec<String>>> {
    let Some(cs) = v.get(key) else { return Ok(None) };
    let Some(axes) = cs.get("axes") else { return Ok(None) };
    let axes = axes
        .as_array()
        .ok_or_else(|| corrupt(format!("'{key}.axes' is not a list")))?;
    axes.iter()
        .map(|a| {
            a.get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| corrupt(format!("an axis of '{key}' has no name")))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

fn f64_vec(v: &Value, what: &str) -> Result<Vec<f64>> {
    v.as_array()
        .ok_or_else(|| corrupt(format!("'{what}' is not a list of numbers")))?
        .iter()
        .map(|x| x.as_f64().ok_or_else(|| corrupt(format!("'{what}' holds a non-number: {x}"))))
        .collect()
}

fn parse(v: &Value) -> Result<Transformation> {
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt(format!("transformation without a 'type': {v}")))?;
    let input = cs_axes(v, "input")?;
    let output = cs_axes(v, "output")?;
    match ty {
        "identity" => Ok(Transformation::Identity),
        "scale" | "translation" => {
            let values = f64_vec(v.get(ty).unwrap_or(&Value::Null), ty)?;
            if let Some(inp) = &input {
                if inp.len() != values.len() {
                    return Err(corrupt(format!(
                        "'{ty}' has {} values but the input system has {} axes",
                        values.len(),
                        inp.len()
                    )));
                }
                if let Some(out) = &output {
                    if out != inp {
                        return Err(corrupt(format!(
                            "'{ty}' must keep the axes, but maps {inp:?} to {out:?}"
                        )));
                    }
                }
            }
            Ok(if ty == "scale" {
                Transformation::Scale(values)
            } else {
                Transformation::Translation(values)
            })
        }
        "affine" => {
            let rows = v
                .get("affine")
                .and_then(Value::as_array)
                .ok_or_else(|| corrupt("'affine' is not a matrix (a list of rows)"))?;
            let mut m = rows
                .iter()
                .map(|r| f64_vec(r, "affine"))
                .collect::<Result<Vec<_>>>()?;
            affine_to_input_order(&mut m, input.as_deref(), output.as_deref())?;
            Ok(Transformation::Affine(m))
        }
        "mapAxis" => map_axis(v, input.as_deref(), output.as_deref()),
        "sequence" => {
            let items = v
                .get("transformations")
                .and_then(Value::as_array)
                .ok_or_else(|| corrupt("'sequence' without a 'transformations' list"))?;
            items
                .iter()
                .map(parse)
                .collect::<Result<Vec<_>>>()
                .map(Transformation::Sequence)
        }
        other => Err(corrupt(format!(
            "transformation type '{other}' is not supported (spatialdata reads identity, mapAxis, scale, \
             translation, affine and sequence)"
        ))),
    }
}

/// Checks the matrix shape and reorders its rows so that output axis `i` is input axis `i`.
fn affine_to_input_order(m: &mut Vec<Vec<f64>>, input: Option<&[String]>, output: Option<&[String]>) -> Result<()> {
    let n_in = match input {
        Some(i) => i.len(),
        None => m.first().map(|r| r.len().saturating_sub(1)).unwrap_or(0),
    };
    // Accept a homogeneous last row [0, ..., 0, 1] if present.
    let n_out_expected = output.map(|o| o.len()).unwrap_or(n_in);
    if m.len() == n_out_expected + 1 {
        if let Some(last) = m.last() {
            let homogeneous = last.len() == n_in + 1
                && last[..n_in].iter().all(|&x| x == 0.0)
                && last[n_in] == 1.0;
            if homogeneous {
                m.pop();
            }
        }
    }
    if m.len() != n_out_expected || m.iter().any(|r| r.len() != n_in + 1) {
        return Err(corrupt(format!(
            "the affine matrix must have {n_out_expected} rows of {} values (n_out × (n_in + 1)), got {} rows",
            n_in + 1,
            m.len()
        )));
    }
    let (Some(input), Some(output)) = (input, output) else { return Ok(()) };
    if input == output {
        return Ok(());
    }
    let mut reordered = Vec::with_capacity(input.len());
    for ax in input {
        let Some(i) = output.iter().position(|o| o == ax) else {
            return Err(corrupt(format!(
                "the affine maps axes {input:?} to {output:?}; only affines whose output axes are a permutation \
                 of the input axes are supported"
            )));
        };
        reordered.push(m[i].clone());
    }
    if output.len() != input.len() {
        return Err(corrupt(format!(
            "the affine maps axes {input:?} to {output:?}; the number of axes must not change"
        )));
    }
    *m = reordered;
    Ok(())
}

/// Converts a `mapAxis` (`{"output axis": "input axis"}`) into the equivalent affine, or identity.
fn map_axis(v: &Value, input: Option<&[String]>, output: Option<&[String]>) -> Result<Transformation> {
    let map = v
        .get("mapAxis")
        .and_then(Value::as_object)
        .ok_or_else(|| corrupt("'mapAxis' is not an object"))?;
    let (Some(input), Some(output)) = (input, output) else {
        return Err(corrupt("'mapAxis' needs input and output coordinate systems with axes"));
    };
    let n_in = input.len();
    let mut m = Vec::with_capacity(output.len());
    for out_ax in output {
        let src = match map.get(out_ax) {
            Some(s) => s
                .as_str()
                .ok_or_else(|| corrupt(format!("'mapAxis' value for '{out_ax}' is not an axis name")))?,
            None => out_ax.as_str(),
        };
        let j = input
            .iter()
            .position(|a| a == src)
            .ok_or_else(|| corrupt(format!("'mapAxis' maps '{out_ax}' from unknown input axis '{src}'")))?;
        let mut row = vec![0.0; n_in + 1];
        row[j] = 1.0;
        m.push(row);
    }
    affine_to_input_order(&mut m, Some(input), Some(output))?;
    let is_identity = m
        .iter()
        .enumerate()
        .all(|(i, r)| r.iter().enumerate().all(|(j, &x)| x == if i == j { 1.0 } else { 0.0 }));
    Ok(if is_identity {
        Transformation::Identity
    } else {
        Transformation::Affine(m)
    })
}


fn check_finite(v: &[f64], what: &str) -> Result<(), String> {
    if v.iter().any(|x| !x.is_finite()) {
        return Err(format!("{what} holds a NaN or infinite value {v:?}: use finite numbers"));
    }
    Ok(())
}

/// Checks that `t` fits an element with `axes` (vector lengths, affine shape, finite values, non-empty
/// sequences); the message says what to give instead. Shared by rasters, points and shapes.
pub(crate) fn check_against_axes(t: &Transformation, axes: &[&str]) -> Result<(), String> {
    let n = axes.len();
    let c_hint = if axes.contains(&"c") { ", including c (factor 1 / offset 0)" } else { "" };
    match t {
        Transformation::Identity => Ok(()),
        Transformation::Scale(v) | Transformation::Translation(v) => {
            let what = if matches!(t, Transformation::Scale(_)) { "scale" } else { "translation" };
            if v.len() != n {
                return Err(format!(
                    "the {what} has {} values but the element has {n} axes {axes:?}: give one value per axis{c_hint}",
                    v.len()
                ));
            }
            check_finite(v, what)
        }
        Transformation::Affine(m) => {
            if m.len() != n || m.iter().any(|r| r.len() != n + 1) {
                let got: Vec<usize> = m.iter().map(Vec::len).collect();
                return Err(format!(
                    "the affine matrix must be {n} rows of {} values (one row per axis of {axes:?}, last column the \
                     translation, no homogeneous row); got rows of lengths {got:?}",
                    n + 1
                ));
            }
            m.iter().try_for_each(|r| check_finite(r, "the affine matrix"))
        }
        Transformation::Sequence(items) => {
            if items.is_empty() {
                return Err("the sequence is empty: use Identity, or list at least one transformation".into());
            }
            items.iter().try_for_each(|i| check_against_axes(i, axes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CYX: [&str; 3] = ["c", "y", "x"];

    fn round_trip(t: Transformation, axes: &[&str], cs: &str) {
        let j = to_ngff_json(&t, axes, cs);
        let (name, back) = from_ngff_json(&j).unwrap();
        assert_eq!(name, cs);
        assert_eq!(back, t);
    }

    #[test]
    fn round_trips_every_type() {
        round_trip(Transformation::Identity, &CYX, "global");
        round_trip(Transformation::Scale(vec![1.0, 2.0, 0.5]), &CYX, "aligned");
        round_trip(Transformation::Translation(vec![0.0, 10.0, -3.5]), &CYX, "global");
        round_trip(
            Transformation::Affine(vec![
                vec![1.0, 0.0, 0.0, 0.0],
                vec![0.0, 2.0, 0.1, 5.0],
                vec![0.0, 0.0, 3.0, 6.0],
            ]),
            &CYX,
            "global",
        );
        round_trip(
            Transformation::Sequence(vec![
                Transformation::Scale(vec![2.0, 2.0]),
                Transformation::Translation(vec![1.0, 2.0]),
            ]),
            &["y", "x"],
            "other",
        );
    }

    #[test]
    fn writes_spatialdata_json() {
        let j = to_ngff_json(&Transformation::Scale(vec![1.0, 2.0, 2.0]), &CYX, "global");
        let expected = json!({
            "type": "scale", "scale": [1.0, 2.0, 2.0],
            "input": {"name": "cyx", "axes": [{"name": "c", "type": "channel"},
                {"name": "y", "type": "space", "unit": "unit"}, {"name": "x", "type": "space", "unit": "unit"}]},
            "output": {"name": "global", "axes": [{"name": "c", "type": "channel"},
                {"name": "y", "type": "space", "unit": "unit"}, {"name": "x", "type": "space", "unit": "unit"}]}
        });
        assert_eq!(j, expected);
        // key order as spatialdata writes it
        let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["type", "scale", "input", "output"]);
    }

    #[test]
    fn sequence_items_carry_systems() {
        let j = to_ngff_json(
            &Transformation::Sequence(vec![Transformation::Identity]),
            &["y", "x"],
            "aligned",
        );
        let inner = &j["transformations"][0];
        assert_eq!(inner["input"]["name"], "yx");
        assert_eq!(inner["output"]["name"], "global");
        assert_eq!(j["output"]["name"], "aligned");
    }

    #[test]
    fn reads_permuted_affine_and_map_axis() {
        let cs = |name: &str, axes: &[&str]| coordinate_system_json(name, axes);
        // spatialdata's output for an (x,y) affine applied to a c,y,x image: output axes c,x,y
        let v = json!({"type": "affine",
            "affine": [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 7.0], [0.0, 3.0, 0.0, 8.0]],
            "input": cs("cyx", &CYX), "output": cs("global", &["c", "x", "y"])});
        let (_, t) = from_ngff_json(&v).unwrap();
        assert_eq!(
            t,
            Transformation::Affine(vec![
                vec![1.0, 0.0, 0.0, 0.0],
                vec![0.0, 3.0, 0.0, 8.0],
                vec![0.0, 0.0, 2.0, 7.0]
            ])
        );
        let v = json!({"type": "mapAxis", "mapAxis": {"x": "y", "y": "x"},
            "input": cs("yx", &["y", "x"]), "output": cs("global", &["y", "x"])});
        let (_, t) = from_ngff_json(&v).unwrap();
        assert_eq!(
            t,
            Transformation::Affine(vec![vec![0.0, 1.0, 0.0], vec![1.0, 0.0, 0.0]])
        );
        let v = json!({"type": "mapAxis", "mapAxis": {"x": "x", "y": "y"},
            "input": cs("yx", &["y", "x"]), "output": cs("global", &["y", "x"])});
        assert_eq!(from_ngff_json(&v).unwrap().1, Transformation::Identity);
    }

    #[test]
    fn refuses_malformed() {
        let cs = coordinate_system_json("yx", &["y", "x"]);
        for bad in [
            json!({"type": "rotation", "input": cs, "output": cs}),
            json!({"type": "scale", "scale": [1.0], "input": cs, "output": cs}),
            json!({"type": "scale", "scale": [1.0, 2.0], "input": cs}),
            json!({"type": "affine", "affine": [[1.0, 0.0]], "input": cs, "output": cs}),
            json!({"input": cs, "output": cs}),
        ] {
            assert!(
                matches!(from_ngff_json(&bad), Err(Error::CorruptMetadata { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn accepts_homogeneous_last_row() {
        let cs = coordinate_system_json("yx", &["y", "x"]);
        let v = json!({"type": "affine", "affine": [[2.0, 0.0, 1.0], [0.0, 2.0, 1.0], [0.0, 0.0, 1.0]],
            "input": cs, "output": cs});
        assert_eq!(
            from_ngff_json(&v).unwrap().1,
            Transformation::Affine(vec![vec![2.0, 0.0, 1.0], vec![0.0, 2.0, 1.0]])
        );
    }
}
