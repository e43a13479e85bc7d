//! The `zarr.json` of one level array, exactly as written to disk: Zarr v3, regular chunk grid, default chunk
//! key encoding with `/`, fill value 0, `bytes` (little endian) + compression codec, optionally wrapped in
//! `sharding_indexed`, and `dimension_names`.

use super::levels::LevelPlan;
use super::{Compression, DataType};
use serde_json::{json, Value};

/// The fill value in the JSON form the data type requires.
fn fill_value(dtype: DataType) -> Value {
    match dtype {
        DataType::Bool => json!(false),
        DataType::F32 | DataType::F64 => json!(0.0),
        _ => json!(0),
    }
}

/// The `bytes` codec; zarr-python omits the endianness for one-byte types.
fn bytes_codec(dtype: DataType) -> Value {
    if dtype.size() == 1 {
        json!({"name": "bytes"})
    } else {
        json!({"name": "bytes", "configuration": {"endian": "little"}})
    }
}

/// The codecs that encode one (inner) chunk.
fn chunk_codecs(dtype: DataType, compression: &Compression) -> Vec<Value> {
    let mut codecs = vec![bytes_codec(dtype)];
    match compression {
        Compression::None => {}
        Compression::Zstd { level } => {
            codecs.push(json!({"name": "zstd", "configuration": {"level": level, "checksum": false}}));
        }
        Compression::Blosc { cname, clevel, shuffle } => {
            let shuffle = if *shuffle { "shuffle" } else { "noshuffle" };
            codecs.push(json!({"name": "blosc", "configuration": {
                "cname": cname, "clevel": clevel, "shuffle": shuffle,
                "typesize": dtype.size(), "blocksize": 0}}));
        }
    }
    codecs
}

/// The complete `zarr.json` document of a level array.
pub(crate) fn array_json(plan: &LevelPlan, dtype: DataType, compression: &Compression, dims: &[String]) -> Value {
    let inner = chunk_codecs(dtype, compression);
    let (grid_chunk, codecs) = match &plan.shard {
        None => (plan.chunk.clone(), inner),
        Some(shard) => (
            shard.clone(),
            vec![json!({"name": "sharding_indexed", "configuration": {
                "chunk_shape": plan.chunk,
                "codecs": inner,
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
                "index_location": "end"}})],
        ),
    };
    json!({
        "zarr_format": 3,
        "node_type": "array",
        "shape": plan.shape,
        "data_type": dtype.zarr_name(),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid_chunk}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill_value(dtype),
        "codecs": codecs,
        "attributes": {},
        "dimension_names": dims,
        "storage_transformers": []
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(shard: Option<Vec<u64>>) -> LevelPlan {
        LevelPlan {
            path: "s0".into(),
            shape: vec![3, 64, 64],
            chunk: vec![3, 32, 32],
            shard,
            scale: vec![1.0, 1.0, 1.0],
        }
    }

    #[test]
    fn plain_array_matches_zarr_python() {
        let dims: Vec<String> = vec!["c".into(), "y".into(), "x".into()];
        let j = array_json(&plan(None), DataType::U8, &Compression::Zstd { level: 0 }, &dims);
        assert_eq!(j["chunk_grid"]["configuration"]["chunk_shape"], json!([3, 32, 32]));
        assert_eq!(j["codecs"], json!([{"name": "bytes"}, {"name": "zstd", "configuration": {"level": 0, "checksum": false}}]));
        assert_eq!(j["fill_value"], json!(0));
        assert_eq!(j["dimension_names"], json!(["c", "y", "x"]));
    }

    #[test]
    fn sharded_array() {
        let dims: Vec<String> = vec!["c".into(), "y".into(), "x".into()];
        let j = array_json(&plan(Some(vec![3, 64, 64])), DataType::F32, &Compression::None, &dims);
        assert_eq!(j["chunk_grid"]["configuration"]["chunk_shape"], json!([3, 64, 64]));
        assert_eq!(j["codecs"][0]["name"], "sharding_indexed");
        assert_eq!(j["codecs"][0]["configuration"]["chunk_shape"], json!([3, 32, 32]));
        assert_eq!(j["fill_value"], json!(0.0));
    }
}
