//! `zarrtx info STORE [--at-version V] [--json]`: the store's version and every element, with raster details.

use super::open_read;
use crate::cli_error::CliResult;
use crate::output::{emit, emit_json, shape_text, writer_json, writer_text};
use crate::transform_arg::format_spec;
use serde_json::{json, Map, Value};
use std::path::Path;
use zarrtx::{ElementType, Snapshot};

/// Raster details of `name` as JSON fields (`dims`, `dtype`, `levels`, `channels`, `coordinate_systems`,
/// `transformations`).
fn raster_json(snap: &Snapshot, name: &str) -> CliResult<Map<String, Value>> {
    let r = snap.raster_info(name)?;
    let mut m = Map::new();
    m.insert("dims".into(), json!(r.dims));
    m.insert("dtype".into(), json!(r.data_type.zarr_name()));
    m.insert(
        "levels".into(),
        Value::Array(
            r.levels
                .iter()
                .map(|l| json!({"path": l.path, "shape": l.shape, "chunks": l.chunk_shape}))
                .collect(),
        ),
    );
    m.insert("channels".into(), json!(r.channel_names));
    m.insert(
        "coordinate_systems".into(),
        json!(r.transformations.keys().collect::<Vec<_>>()),
    );
    m.insert(
        "transformations".into(),
        Value::Object(
            r.transformations
                .iter()
                .map(|(k, t)| (k.clone(), json!(format_spec(t))))
                .collect(),
        ),
    );
    Ok(m)
}

/// Points or shapes details of `name` as JSON fields (`rows`, `files`, `axes`, `columns`, `geometry_types`,
/// `feature_key`, `instance_key`, `coordinate_systems`, `transformations`).
fn vector_json(snap: &Snapshot, name: &str) -> CliResult<Map<String, Value>> {
    let v = snap.vector_info(name)?;
    let mut m = Map::new();
    m.insert("rows".into(), json!(v.n_rows));
    m.insert("files".into(), json!(v.files));
    m.insert("axes".into(), json!(v.axes));
    m.insert(
        "columns".into(),
        Value::Array(v.columns.iter().map(|(n, t)| json!({"name": n, "dtype": t})).collect()),
    );
    if v.element_type == ElementType::Shapes {
        m.insert("geometry_types".into(), json!(v.geometry_types));
    } else {
        m.insert("feature_key".into(), json!(v.feature_key));
        m.insert("instance_key".into(), json!(v.instance_key));
    }
    m.insert("coordinate_systems".into(), json!(v.transformations.keys().collect::<Vec<_>>()));
    m.insert(
        "transformations".into(),
        Value::Object(v.transformations.iter().map(|(k, t)| (k.clone(), json!(format_spec(t)))).collect()),
    );
    Ok(m)
}

/// The text lines `info` prints for a points or shapes element.
fn vector_text(snap: &Snapshot, name: &str) -> String {
    let v = match snap.vector_info(name) {
        Ok(v) => v,
        Err(err) => return format!("  (cannot describe: {err})\n"),
    };
    let mut out = String::new();
    if v.element_type == ElementType::Shapes {
        let kind = if v.geometry_types == ["Point"] { " (circles)" } else { "" };
        out.push_str(&format!(
            "  {} shape(s), geometry {}{kind}, axes {}\n",
            v.n_rows,
            v.geometry_types.join(", "),
            v.axes.join(",")
        ));
    } else {
        out.push_str(&format!("  {} point(s) in {} file(s), axes {}\n", v.n_rows, v.files, v.axes.join(",")));
        if let Some(k) = &v.feature_key {
            out.push_str(&format!("  feature_key: {k}\n"));
        }
        if let Some(k) = &v.instance_key {
            out.push_str(&format!("  instance_key: {k}\n"));
        }
    }
    let cols: Vec<String> = v.columns.iter().map(|(n, t)| format!("{n} ({t})")).collect();
    out.push_str(&format!("  columns: {}\n", cols.join(", ")));
    let cs: Vec<String> = v.transformations.iter().map(|(k, t)| format!("{k} ({})", format_spec(t))).collect();
    out.push_str(&format!("  coordinate systems: {}\n", cs.join(", ")));
    out
}

/// Table details of `name` as JSON fields (`n_obs`, `n_vars`, `x`, `obs_index`, `columns`, `regions`,
/// `region_key`, `instance_key`, `layers`, `obsm`), from its metadata alone.
fn table_json(snap: &Snapshot, name: &str) -> CliResult<Map<String, Value>> {
    let t = snap.table_info(name)?;
    let mut m = Map::new();
    m.insert("n_obs".into(), json!(t.n_obs));
    m.insert("n_vars".into(), json!(t.n_vars));
    m.insert("x".into(), json!(t.x));
    m.insert("obs_index".into(), json!(t.obs_index));
    m.insert(
        "columns".into(),
        Value::Array(
            t.columns
                .iter()
                .map(|c| json!({"name": c.name, "encoding": c.encoding, "dtype": c.data_type.to_string()}))
                .collect(),
        ),
    );
    m.insert("regions".into(), json!(t.regions));
    m.insert("region_key".into(), json!(t.region_key));
    m.insert("instance_key".into(), json!(t.instance_key));
    m.insert("layers".into(), json!(t.layers));
    m.insert("obsm".into(), json!(t.obsm));
    Ok(m)
}

/// The text lines `info` prints for a table.
fn table_text(snap: &Snapshot, name: &str) -> String {
    let t = match snap.table_info(name) {
        Ok(t) => t,
        Err(err) => return format!("  (cannot describe: {err})\n"),
    };
    let mut out = format!(
        "  {} obs × {} vars{}\n",
        t.n_obs,
        t.n_vars,
        t.x.as_ref().map(|x| format!(", X {x}")).unwrap_or_default()
    );
    if let (Some(rk), Some(ik)) = (&t.region_key, &t.instance_key) {
        out.push_str(&format!("  region_key: {rk}, instance_key: {ik}\n"));
        let shown: Vec<&str> = t.regions.iter().take(20).map(String::as_str).collect();
        let more = if t.regions.len() > 20 { format!(", … +{}", t.regions.len() - 20) } else { String::new() };
        out.push_str(&format!("  regions ({}): {}{more}\n", t.regions.len(), shown.join(", ")));
    }
    let cols: Vec<String> = t
        .columns
        .iter()
        .map(|c| match c.encoding.as_str() {
            "array" => format!("{} ({})", c.name, c.data_type.to_string().to_lowercase()),
            enc => format!("{} ({enc})", c.name),
        })
        .collect();
    out.push_str(&format!("  obs index: {}; columns: {}\n", t.obs_index, cols.join(", ")));
    if !t.layers.is_empty() {
        out.push_str(&format!("  layers: {}\n", t.layers.join(", ")));
    }
    if !t.obsm.is_empty() {
        out.push_str(&format!("  obsm: {}\n", t.obsm.join(", ")));
    }
    out
}

/// Runs `info`.
pub fn run(store: &Path, at_version: Option<u64>, json: bool) -> CliResult<i32> {
    let s = open_read(store)?;
    let snap = s.snapshot(at_version)?;
    let elements = snap.elements();
    if json {
        let mut list = Vec::with_capacity(elements.len());
        for e in &elements {
            let mut obj = Map::new();
            obj.insert("name".into(), json!(e.name));
            obj.insert("type".into(), json!(e.element_type.group()));
            obj.insert("version".into(), json!(e.version));
            obj.insert("txn".into(), json!(e.txn));
            obj.insert("writer".into(), writer_json(&e.writer));
            if matches!(e.element_type, ElementType::Images | ElementType::Labels) {
                // One element whose metadata cannot be described must not hide the others.
                match raster_json(&snap, &e.name) {
                    Ok(m) => obj.extend(m),
                    Err(err) => {
                        obj.insert("error".into(), json!(err.message));
                    }
                }
            }
            if matches!(e.element_type, ElementType::Points | ElementType::Shapes) {
                match vector_json(&snap, &e.name) {
                    Ok(m) => obj.extend(m),
                    Err(err) => {
                        obj.insert("error".into(), json!(err.message));
                    }
                }
            }
            if e.element_type == ElementType::Tables {
                match table_json(&snap, &e.name) {
                    Ok(m) => obj.extend(m),
                    Err(err) => {
                        obj.insert("error".into(), json!(err.message));
                    }
                }
            }
            list.push(Value::Object(obj));
        }
        emit_json(&json!({
            "store": store.display().to_string(),
            "version": snap.version(),
            "elements": list,
        }));
        return Ok(0);
    }
    let mut out = format!(
        "store {}: version {}{}, {} element(s)\n",
        store.display(),
        snap.version(),
        if at_version.is_some() { " (pinned)" } else { "" },
        elements.len()
    );
    for e in &elements {
        out.push_str(&format!(
            "\n{}/{}  added at version {} by {}\n",
            e.element_type,
            e.name,
            e.version,
            writer_text(&e.writer)
        ));
        if matches!(e.element_type, ElementType::Points | ElementType::Shapes) {
            out.push_str(&vector_text(&snap, &e.name));
        }
        if e.element_type == ElementType::Tables {
            out.push_str(&table_text(&snap, &e.name));
        }
        if matches!(e.element_type, ElementType::Images | ElementType::Labels) {
            let r = match snap.raster_info(&e.name) {
                Ok(r) => r,
                Err(err) => {
                    out.push_str(&format!("  (cannot describe: {err})\n"));
                    continue;
                }
            };
            out.push_str(&format!(
                "  dims {}  dtype {}\n",
                r.dims.join(","),
                r.data_type.zarr_name()
            ));
            for l in &r.levels {
                out.push_str(&format!(
                    "  level {}: shape {}  chunks {}\n",
                    l.path,
                    shape_text(&l.shape),
                    shape_text(&l.chunk_shape)
                ));
            }
            if let Some(ch) = channel_list(&r.channel_names) {
                out.push_str(&format!("  channels: {ch}\n"));
            }
            let cs: Vec<String> = r
                .transformations
                .iter()
                .map(|(k, t)| format!("{k} ({})", format_spec(t)))
                .collect();
            out.push_str(&format!("  coordinate systems: {}\n", cs.join(", ")));
        }
    }
    emit(out.trim_end());
    Ok(0)
}

fn channel_list(names: &Option<Vec<String>>) -> Option<String> {
    names.as_ref().filter(|n| !n.is_empty()).map(|n| n.join(", "))
}
