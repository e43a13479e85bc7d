//! The `--transform CS=SPEC` argument: parsing, fitting to the element's axes, and formatting back.
//!
//! SPEC is one of
//! - `identity`
//! - `scale:1,2,2` (one factor per axis)
//! - `translation:0,10,20` (one offset per axis)
//! - `affine:[[1,0,0,0],[0,2,0,5],[0,0,2,5]]` (a JSON matrix, `n_out × (n_in + 1)`; a square matrix whose last
//!   row is the homogeneous `[0,…,0,1]` is accepted too)
//! - `sequence:scale:1,2,2;translation:0,5,5` (several of the above, applied in order)
//!
//! Vectors and matrices cover all of the element's axes in order, including `c` for images (give factor 1 /
//! offset 0 for `c`), exactly as spatialdata's `Scale(..., axes=("c","y","x"))`; a wrong count is refused rather
//! than guessed.

use crate::cli_error::{CliError, CliResult};
use std::collections::BTreeMap;
use zarrtx::Transformation;

/// One `--transform` argument: a coordinate system and the transformation into it.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformArg {
    /// The target coordinate system's name.
    pub system: String,
    /// The transformation from the element's intrinsic system to `system`.
    pub transform: Transformation,
}

/// Parses `CS=SPEC` (clap value parser for `--transform`).
pub fn parse_transform_arg(s: &str) -> Result<TransformArg, String> {
    let (system, spec) = s
        .split_once('=')
        .ok_or_else(|| format!("expected CS=SPEC (e.g. global=scale:1,2,2), got '{s}'"))?;
    let system = system.trim();
    if system.is_empty() {
        return Err(format!("the coordinate system name before '=' is empty in '{s}'"));
    }
    if system.chars().any(|c| c.is_control() || c == '/') {
        return Err(format!(
            "coordinate system name '{system}' may not contain '/' or control characters"
        ));
    }
    Ok(TransformArg {
        system: system.to_string(),
        transform: parse_spec(spec)?,
    })
}

fn parse_numbers(kind: &str, list: &str) -> Result<Vec<f64>, String> {
    let values: Vec<f64> = list
        .split(',')
        .map(|v| {
            let v = v.trim();
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("{kind}: '{v}' is not a finite number"))
        })
        .collect::<Result<_, _>>()?;
    Ok(values)
}

/// Parses a transformation SPEC (see the module documentation).
pub fn parse_spec(spec: &str) -> Result<Transformation, String> {
    parse_spec_inner(spec.trim(), true)
}

fn parse_spec_inner(spec: &str, allow_sequence: bool) -> Result<Transformation, String> {
    if spec == "identity" {
        return Ok(Transformation::Identity);
    }
    let (kind, rest) = spec.split_once(':').ok_or_else(|| {
        format!("unknown transformation '{spec}': use identity, scale:…, translation:…, affine:[[…]] or sequence:…")
    })?;
    match kind.trim() {
        "scale" => {
            let v = parse_numbers("scale", rest)?;
            if v.contains(&0.0) {
                return Err("scale: factors must be non-zero".to_string());
            }
            Ok(Transformation::Scale(v))
        }
        "translation" => Ok(Transformation::Translation(parse_numbers("translation", rest)?)),
        "affine" => {
            let m: Vec<Vec<f64>> = serde_json::from_str(rest.trim())
                .map_err(|e| format!("affine: expected a JSON matrix like [[1,0,0],[0,1,0]]: {e}"))?;
            let cols = m.first().map(|r| r.len()).unwrap_or(0);
            if m.is_empty() || cols < 2 || m.iter().any(|r| r.len() != cols) {
                return Err("affine: the matrix must have at least one row, and all rows the same length (≥ 2)".into());
            }
            if m.iter().flatten().any(|x| !x.is_finite()) {
                return Err("affine: entries must be finite numbers".to_string());
            }
            Ok(Transformation::Affine(m))
        }
        "sequence" if allow_sequence => {
            let parts: Vec<Transformation> = rest
                .split(';')
                .map(|p| {
                    let p = p.trim();
                    if p.is_empty() {
                        Err("sequence: empty step (steps are separated by ';')".to_string())
                    } else {
                        parse_spec_inner(p, false)
                    }
                })
                .collect::<Result<_, _>>()?;
            Ok(Transformation::Sequence(parts))
        }
        "sequence" => Err("sequence: sequences cannot be nested".to_string()),
        other => Err(format!(
            "unknown transformation '{other}': use identity, scale:…, translation:…, affine:[[…]] or sequence:…"
        )),
    }
}

fn fmt_num(x: f64) -> String {
    format!("{x}")
}

/// Formats a transformation in SPEC syntax (the inverse of [`parse_spec`]).
pub fn format_spec(t: &Transformation) -> String {
    let list = |v: &[f64]| v.iter().map(|&x| fmt_num(x)).collect::<Vec<_>>().join(",");
    match t {
        Transformation::Identity => "identity".to_string(),
        Transformation::Scale(v) => format!("scale:{}", list(v)),
        Transformation::Translation(v) => format!("translation:{}", list(v)),
        Transformation::Affine(m) => format!(
            "affine:[{}]",
            m.iter().map(|r| format!("[{}]", list(r))).collect::<Vec<_>>().join(",")
        ),
        Transformation::Sequence(s) => {
            format!("sequence:{}", s.iter().map(format_spec).collect::<Vec<_>>().join(";"))
        }
    }
}

/// Checks `t` against the element's `axes` (one value per axis; affine matrices `n × (n + 1)`) and drops a
/// homogeneous last row from square affine matrices.
pub fn fit_to_axes(t: &Transformation, axes: &[&str]) -> Result<Transformation, String> {
    let n = axes.len();
    let axes_list = axes.join(",");
    let check_vector = |kind: &str, v: &[f64]| -> Result<Vec<f64>, String> {
        if v.len() == n {
            Ok(v.to_vec())
        } else {
            Err(format!(
                "{kind} has {} values but the element's axes are {axes_list}: give one value per axis ({n})",
                v.len()
            ))
        }
    };
    match t {
        Transformation::Identity => Ok(Transformation::Identity),
        Transformation::Scale(v) => Ok(Transformation::Scale(check_vector("scale", v)?)),
        Transformation::Translation(v) => Ok(Transformation::Translation(check_vector("translation", v)?)),
        Transformation::Affine(m) => {
            let mut m = m.clone();
            let cols = m[0].len();
            if m.len() == cols && m.len() >= 2 {
                let last = &m[m.len() - 1];
                let homogeneous = last[..cols - 1].iter().all(|&x| x == 0.0) && last[cols - 1] == 1.0;
                if homogeneous {
                    m.pop();
                }
            }
            if m[0].len() == n + 1 && m.len() == n {
                Ok(Transformation::Affine(m))
            } else {
                Err(format!(
                    "affine is {}×{} but the element's axes are {axes_list}: give a {n}×{} matrix (one row per \
                     axis, one column per axis plus the offset; a homogeneous last row [0,…,0,1] may be added)",
                    m.len(),
                    m[0].len(),
                    n + 1
                ))
            }
        }
        Transformation::Sequence(s) => Ok(Transformation::Sequence(
            s.iter().map(|t| fit_to_axes(t, axes)).collect::<Result<_, _>>()?,
        )),
    }
}

/// Collects `--transform` arguments into the spec's map, fitted to `axes`; repeated systems are refused.
pub fn collect_transforms(args: &[TransformArg], axes: &[&str]) -> CliResult<BTreeMap<String, Transformation>> {
    let mut out = BTreeMap::new();
    for a in args {
        let t =
            fit_to_axes(&a.transform, axes).map_err(|e| CliError::usage(format!("--transform {}: {e}", a.system)))?;
        if out.insert(a.system.clone(), t).is_some() {
            return Err(CliError::usage(format!(
                "--transform: coordinate system '{}' is given more than once",
                a.system
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transformation::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(parse_spec("identity").unwrap(), Identity);
        assert_eq!(parse_spec("scale:1,2,2").unwrap(), Scale(vec![1.0, 2.0, 2.0]));
        assert_eq!(
            parse_spec("translation:0, 10.5,-20").unwrap(),
            Translation(vec![0.0, 10.5, -20.0])
        );
        assert_eq!(
            parse_spec("affine:[[1,0,5],[0,2,6]]").unwrap(),
            Affine(vec![vec![1.0, 0.0, 5.0], vec![0.0, 2.0, 6.0]])
        );
        assert_eq!(
            parse_spec("sequence:scale:1,2,2;translation:0,5,5").unwrap(),
            Sequence(vec![Scale(vec![1.0, 2.0, 2.0]), Translation(vec![0.0, 5.0, 5.0])])
        );
        assert_eq!(
            parse_spec("sequence:affine:[[1,0,0],[0,1,0]];identity").unwrap(),
            Sequence(vec![Affine(vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]]), Identity])
        );
    }

    #[test]
    fn refuses_malformed_specs() {
        for bad in [
            "",
            "rotate:1",
            "scale:",
            "scale:1,x",
            "scale:1,0",
            "scale:1,inf",
            "translation:1,,2",
            "affine:[1,2]",
            "affine:[[1,2],[3]]",
            "affine:[]",
            "sequence:",
            "sequence:scale:1;;identity",
            "sequence:sequence:identity",
            "identity:1",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn parses_cs_argument() {
        let a = parse_transform_arg("aligned=scale:1,2,2").unwrap();
        assert_eq!(a.system, "aligned");
        assert_eq!(a.transform, Scale(vec![1.0, 2.0, 2.0]));
        assert!(parse_transform_arg("scale:1,2").is_err());
        assert!(parse_transform_arg("=identity").is_err());
        assert!(parse_transform_arg("a/b=identity").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for s in [
            "identity",
            "scale:1,2.5,2",
            "translation:0,-10,20",
            "affine:[[1,0,0,0],[0,2,0,5],[0,0,2,5]]",
            "sequence:scale:1,2,2;translation:0,5,5",
        ] {
            assert_eq!(format_spec(&parse_spec(s).unwrap()), s);
        }
    }

    #[test]
    fn checks_vector_lengths_against_axes() {
        let cyx = ["c", "y", "x"];
        assert_eq!(
            fit_to_axes(&Scale(vec![1.0, 2.0, 2.0]), &cyx).unwrap(),
            Scale(vec![1.0, 2.0, 2.0])
        );
        assert_eq!(
            fit_to_axes(&Scale(vec![2.0, 2.0]), &["y", "x"]).unwrap(),
            Scale(vec![2.0, 2.0])
        );
        // No guessing: a spatial-only vector for a c,y,x element is refused.
        let e = fit_to_axes(&Scale(vec![1.0, 2.0]), &cyx).unwrap_err();
        assert!(e.contains("c,y,x"), "{e}");
        assert!(fit_to_axes(&Translation(vec![1.0; 4]), &cyx).is_err());
        assert!(fit_to_axes(&Sequence(vec![Identity, Scale(vec![2.0])]), &["y", "x"]).is_err());
    }

    #[test]
    fn checks_affine_matrices() {
        let yx = ["y", "x"];
        let m = vec![vec![2.0, 0.0, 5.0], vec![0.0, 2.0, 6.0]];
        assert_eq!(fit_to_axes(&Affine(m.clone()), &yx).unwrap(), Affine(m.clone()));
        // Homogeneous row dropped.
        let mut h = m.clone();
        h.push(vec![0.0, 0.0, 1.0]);
        assert_eq!(fit_to_axes(&Affine(h), &yx).unwrap(), Affine(m.clone()));
        assert!(fit_to_axes(&Affine(m), &["c", "y", "x"]).is_err());
        assert!(fit_to_axes(&Affine(vec![vec![1.0, 0.0]]), &yx).is_err());
    }

    #[test]
    fn collects_and_refuses_duplicates() {
        let args = vec![
            parse_transform_arg("global=identity").unwrap(),
            parse_transform_arg("aligned=sequence:scale:1,2,2;translation:0,1,1").unwrap(),
        ];
        let map = collect_transforms(&args, &["c", "y", "x"]).unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(
            map["aligned"],
            Sequence(vec![Scale(vec![1.0, 2.0, 2.0]), Translation(vec![0.0, 1.0, 1.0])])
        );
        let dup = vec![args[0].clone(), args[0].clone()];
        assert_eq!(collect_transforms(&dup, &["y", "x"]).unwrap_err().code, 2);
    }
}
