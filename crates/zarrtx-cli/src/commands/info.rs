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
