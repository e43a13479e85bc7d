//! The array of an array plan: a new array described by an [`ArraySpec`] (its `zarr.json` generated as
//! zarr-python writes it), or an existing array's `zarr.json` read back as the level the parts write into.

use crate::error::{Error, Result};
use crate::raster::array_meta::array_json;
use crate::raster::levels::LevelPlan;
use crate::raster::validate::check_compression;
use crate::raster::{Compression, DataType};
use serde_json::{Map, Value};

/// Chunks chosen by [`ArraySpec::default_chunk_shape`] hold at most this many bytes.
const DEFAULT_CHUNK_BYTES: u64 = 4 << 20;

/// A new array of a plain Zarr v3 hierarchy: what [`ArrayTarget::Create`](super::ArrayTarget::Create) creates.
#[derive(Debug, Clone, PartialEq)]
pub struct ArraySpec {
    /// The array's shape (at least one axis, none of length 0).
    pub shape: Vec<u64>,
    /// Its element type.
    pub data_type: DataType,
    /// Chunk shape (the inner chunk shape when sharded); `None`: [`ArraySpec::default_chunk_shape`].
    pub chunk_shape: Option<Vec<u64>>,
    /// Shard shape (a whole number of chunks per axis), when the array is sharded.
    pub shard_shape: Option<Vec<u64>>,
    /// Chunk compression (zstd level 0 by default, as zarr-python).
    pub compression: Compression,
    /// The fill value in Zarr v3 JSON form (`0`, `0.0`, `"NaN"`, `false`, ...); `None`: zero.
    pub fill_value: Option<Value>,
    /// Names of the axes (`dimension_names`), if any.
    pub dimension_names: Option<Vec<String>>,
    /// The array's attributes.
    pub attributes: Map<String, Value>,
}

impl ArraySpec {
    /// A spec with default chunking, zstd level 0, fill value 0, no names and no attributes.
    pub fn new(shape: &[u64], data_type: DataType) -> Self {
        ArraySpec {
            shape: shape.to_vec(),
            data_type,
            chunk_shape: None,
            shard_shape: None,
            compression: Compression::default(),
            fill_value: None,
            dimension_names: None,
            attributes: Map::new(),
        }
    }

    /// The chunk shape used when none is given: the whole array, with its longest axis halved until a chunk holds
    /// at most 4 MiB (a `(time, channel)` recording gets chunks of all channels and some thousands of samples).
    pub fn default_chunk_shape(shape: &[u64], data_type: DataType) -> Vec<u64> {
        let mut chunk: Vec<u64> = shape.iter().map(|&n| n.max(1)).collect();
        let bytes = |c: &[u64]| c.iter().product::<u64>() * data_type.size() as u64;
        while bytes(&chunk) > DEFAULT_CHUNK_BYTES {
            let Some((axis, _)) = chunk.iter().enumerate().filter(|(_, &n)| n > 1).max_by_key(|(_, &n)| n) else {
                break;
            };
            chunk[axis] = chunk[axis].div_ceil(2);
        }
        chunk
    }

    /// The chunk shape: given or default.
    pub fn chunks(&self) -> Vec<u64> {
        self.chunk_shape.clone().unwrap_or_else(|| Self::default_chunk_shape(&self.shape, self.data_type))
    }

    /// Checks the spec; the message says what is wrong and how to fix it.
    pub(crate) fn check(&self) -> Result<(), String> {
        let n = self.shape.len();
        if n == 0 {
            return Err("the shape has no axes: a write plan needs an array of at least one axis".into());
        }
        if let Some(i) = self.shape.iter().position(|&s| s == 0) {
            return Err(format!("the shape {:?} is 0 along axis {i}: there is nothing to write", self.shape));
        }
        let check_len = |what: &str, v: &[u64]| -> Result<(), String> {
            if v.len() != n {
                return Err(format!("{what} {v:?} has {} entries but the array has {n} axes", v.len()));
            }
            if let Some(i) = v.iter().position(|&x| x == 0) {
                return Err(format!("{what} {v:?} is 0 along axis {i}: every entry must be at least 1"));
            }
            Ok(())
        };
        let chunk = self.chunks();
        check_len("chunk_shape", &chunk)?;
        if let Some(s) = &self.shard_shape {
            check_len("shard_shape", s)?;
            if let Some(i) = (0..n).find(|&i| s[i] % chunk[i] != 0) {
                return Err(format!(
                    "shard_shape {s:?} is not a multiple of the chunk shape {chunk:?} along axis {i}: choose a shard \
                     shape that is a whole number of chunks"
                ));
            }
        }
        if let Some(names) = &self.dimension_names {
            if names.len() != n {
                return Err(format!(
                    "dimension_names {names:?} has {} entries but the array has {n} axes: give one name per axis",
                    names.len()
                ));
            }
        }
        check_compression(&self.compression)
    }

    /// The array's `zarr.json` document.
    pub(crate) fn document(&self) -> Value {
        let plan = LevelPlan {
            path: String::new(),
            shape: self.shape.clone(),
            chunk: self.chunks(),
            shard: self.shard_shape.clone(),
            scale: vec![1.0; self.shape.len()],
        };
        let dims = self.dimension_names.clone().unwrap_or_default();
        let mut doc = array_json(&plan, self.data_type, &self.compression, &dims);
        if let Value::Object(map) = &mut doc {
            map.insert("attributes".into(), Value::Object(self.attributes.clone()));
            if self.dimension_names.is_none() {
                map.remove("dimension_names");
            }
            if let Some(fill) = &self.fill_value {
                map.insert("fill_value".into(), fill.clone());
            }
        }
        doc
    }
}

/// The level the parts of a plan write into, read from the array's `zarr.json` `doc` (at `path`, for messages):
/// shape, chunk grid (shards when the first codec is `sharding_indexed`) and data type. Arrays that write plans
/// cannot fill are refused with `InvalidPlan`.
pub(crate) fn level_of(path: &str, doc: &Value) -> Result<(LevelPlan, DataType)> {
    let refuse = |reason: String| Error::InvalidPlan { name: path.to_string(), reason };
    if doc.get("zarr_format").and_then(Value::as_u64) != Some(3) || doc.get("node_type") != Some(&"array".into()) {
        return Err(refuse("its zarr.json does not describe a Zarr v3 array".into()));
    }
    let shape = u64_list(doc.get("shape")).ok_or_else(|| refuse("its shape is not a list of integers".into()))?;
    let type_name = doc.get("data_type").and_then(Value::as_str).unwrap_or("(not a simple type)");
    let dtype = DataType::from_zarr_name(type_name).ok_or_else(|| {
        refuse(format!(
            "its data type {type_name} cannot be written by a write plan: use bool, int8..int64, uint8..uint64, \
             float32 or float64"
        ))
    })?;
    let grid = doc.get("chunk_grid");
    if grid.and_then(|g| g.get("name")).and_then(Value::as_str) != Some("regular") {
        return Err(refuse("its chunk grid is not regular: write plans split regular chunk grids only".into()));
    }
    let grid_shape = u64_list(grid.and_then(|g| g.pointer("/configuration/chunk_shape")))
        .filter(|g| g.len() == shape.len() && g.iter().all(|&x| x > 0))
        .ok_or_else(|| refuse("its chunk grid has no valid chunk_shape".into()))?;
    if doc.get("storage_transformers").and_then(Value::as_array).is_some_and(|t| !t.is_empty()) {
        return Err(refuse("it uses storage transformers, which write plans do not support".into()));
    }
    let first = doc.get("codecs").and_then(Value::as_array).and_then(|c| c.first());
    let (chunk, shard) = if first.and_then(|c| c.get("name")).and_then(Value::as_str) == Some("sharding_indexed") {
        let inner = u64_list(first.and_then(|c| c.pointer("/configuration/chunk_shape")))
            .ok_or_else(|| refuse("its sharding codec has no valid inner chunk_shape".into()))?;
        (inner, Some(grid_shape))
    } else {
        (grid_shape, None)
    };
    let scale = vec![1.0; shape.len()];
    Ok((LevelPlan { path: String::new(), shape, chunk, shard, scale }, dtype))
}

fn u64_list(v: Option<&Value>) -> Option<Vec<u64>> {
    v?.as_array()?.iter().map(Value::as_u64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_chunks_stay_under_4_mib() {
        let c = ArraySpec::default_chunk_shape(&[10_000_000, 384], DataType::I16);
        assert_eq!(c[1], 384);
        assert!(c.iter().product::<u64>() * 2 <= DEFAULT_CHUNK_BYTES);
        assert_eq!(ArraySpec::default_chunk_shape(&[10, 10], DataType::U8), vec![10, 10]);
    }

    #[test]
    fn document_round_trips_through_level_of() {
        let mut spec = ArraySpec::new(&[100, 8], DataType::F32);
        spec.chunk_shape = Some(vec![10, 8]);
        spec.shard_shape = Some(vec![50, 8]);
        spec.dimension_names = Some(vec!["time".into(), "channel".into()]);
        spec.fill_value = Some(json!("NaN"));
        spec.attributes.insert("unit".into(), json!("V"));
        spec.check().unwrap();
        let doc = spec.document();
        assert_eq!(doc["attributes"]["unit"], "V");
        assert_eq!(doc["fill_value"], "NaN");
        assert_eq!(doc["dimension_names"], json!(["time", "channel"]));
        let (level, dtype) = level_of("a", &doc).unwrap();
        assert_eq!((level.shape, level.chunk, level.shard, dtype), (vec![100, 8], vec![10, 8], Some(vec![50, 8]), DataType::F32));
    }

    #[test]
    fn bad_specs_are_refused_with_the_fix() {
        let mut spec = ArraySpec::new(&[100, 8], DataType::U8);
        spec.chunk_shape = Some(vec![10]);
        assert!(spec.check().unwrap_err().contains("2 axes"), "{:?}", spec.check());
        spec.chunk_shape = Some(vec![10, 8]);
        spec.shard_shape = Some(vec![15, 8]);
        assert!(spec.check().unwrap_err().contains("whole number of chunks"));
        let spec = ArraySpec::new(&[], DataType::U8);
        assert!(spec.check().is_err());
        let doc = json!({"zarr_format": 3, "node_type": "array", "shape": [4], "data_type": "string",
                         "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}}});
        assert!(matches!(level_of("s", &doc), Err(Error::InvalidPlan { .. })));
    }
}
