//! `plan.json`: the plan as recorded, with a serializable form of the raster spec.

use super::{canonical_id, plan_json_key, PlanInfo, PLAN_FORMAT};
use crate::error::{Error, Result};
use crate::log::WriterInfo;
use crate::name::{ElementName, ElementType};
use crate::raster::metadata::transformations_json;
use crate::raster::{Compression, DataType, Pyramid, RasterKind, RasterSpec};
use crate::storage::json::get_json;
use crate::storage::{DataHandle, Storage};
use crate::transform::from_ngff_json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ops::Range;

/// Chunk compression as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "codec", rename_all = "lowercase")]
pub(crate) enum CompressionRecord {
    /// No compression.
    None,
    /// zstd.
    Zstd {
        /// Level.
        level: i32,
    },
    /// blosc.
    Blosc {
        /// Inner compressor.
        cname: String,
        /// Level.
        clevel: u8,
        /// Byte shuffle.
        shuffle: bool,
    },
}

/// A [`RasterSpec`] as recorded (pyramids are single or computed in plans).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SpecRecord {
    /// `image` or `labels`.
    pub kind: String,
    /// Axis names.
    pub dims: Vec<String>,
    /// Channel names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_names: Option<Vec<String>>,
    /// Chunk shape, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_shape: Option<Vec<u64>>,
    /// Shard shape, when sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_shape: Option<Vec<u64>>,
    /// Compression.
    pub compression: CompressionRecord,
    /// Downscale factors of the computed pyramid (empty: a single level).
    pub pyramid: Vec<u64>,
    /// The transformations in spatialdata's JSON (empty: identity into `global`).
    pub transformations: Vec<Value>,
}

impl SpecRecord {
    /// The record of `spec` (whose pyramid is not `Given`).
    pub fn from_spec(spec: &RasterSpec) -> Self {
        let compression = match &spec.compression {
            Compression::None => CompressionRecord::None,
            Compression::Zstd { level } => CompressionRecord::Zstd { level: *level },
            Compression::Blosc { cname, clevel, shuffle } => {
                CompressionRecord::Blosc { cname: cname.clone(), clevel: *clevel, shuffle: *shuffle }
            }
        };
        let transformations = if spec.transformations.is_empty() {
            Vec::new()
        } else {
            match transformations_json(&spec.dims, &spec.transformations) {
                Value::Array(v) => v,
                other => vec![other],
            }
        };
        SpecRecord {
            kind: match spec.kind {
                RasterKind::Image => "image".into(),
                RasterKind::Labels => "labels".into(),
            },
            dims: spec.dims.clone(),
            channel_names: spec.channel_names.clone(),
            chunk_shape: spec.chunk_shape.clone(),
            shard_shape: spec.shard_shape.clone(),
            compression,
            pyramid: match &spec.pyramid {
                Pyramid::Computed(f) => f.clone(),
                Pyramid::Single | Pyramid::Given(_) => Vec::new(),
            },
            transformations,
        }
    }

    /// The spec back; `path` names the file for errors.
    pub fn to_spec(&self, path: &str) -> Result<RasterSpec> {
        let corrupt = |reason: String| Error::CorruptMetadata { path: path.into(), reason };
        let kind = match self.kind.as_str() {
            "image" => RasterKind::Image,
            "labels" => RasterKind::Labels,
            other => return Err(corrupt(format!("unknown raster kind '{other}'"))),
        };
        let dims: Vec<&str> = self.dims.iter().map(String::as_str).collect();
        let mut spec = RasterSpec::new(kind, &dims);
        spec.channel_names = self.channel_names.clone();
        spec.chunk_shape = self.chunk_shape.clone();
        spec.shard_shape = self.shard_shape.clone();
        spec.compression = match &self.compression {
            CompressionRecord::None => Compression::None,
            CompressionRecord::Zstd { level } => Compression::Zstd { level: *level },
            CompressionRecord::Blosc { cname, clevel, shuffle } => {
                Compression::Blosc { cname: cname.clone(), clevel: *clevel, shuffle: *shuffle }
            }
        };
        spec.pyramid = if self.pyramid.is_empty() { Pyramid::Single } else { Pyramid::Computed(self.pyramid.clone()) };
        let mut transformations = BTreeMap::new();
        for t in &self.transformations {
            let (cs, t) = from_ngff_json(t).map_err(|e| corrupt(format!("a transformation does not parse: {e}")))?;
            transformations.insert(cs, t);
        }
        spec.transformations = transformations;
        Ok(spec)
    }
}

/// The contents of `plan.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PlanRecord {
    /// Layout format of this file.
    pub format: u32,
    /// The plan's id.
    pub plan_id: String,
    /// The transaction id its commit uses (how a repeated commit finds the first one in the log).
    pub txn: String,
    /// The element.
    pub name: ElementName,
    /// `images` or `labels`.
    pub element_type: ElementType,
    /// The spec.
    pub spec: SpecRecord,
    /// Shape of level 0.
    pub shape: Vec<u64>,
    /// Zarr data type name.
    pub data_type: String,
    /// The write unit the parts are aligned to.
    pub write_unit: Vec<u64>,
    /// The parts.
    pub parts: Vec<Vec<Range<u64>>>,
    /// Key of the staging directory.
    pub staging: String,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Store version at creation.
    pub created_version: u64,
    /// Who created it.
    pub writer: WriterInfo,
    /// Whether the commit replaces an element of the same name (atomically, as `add` with overwrite does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overwrite: bool,
}

impl PlanRecord {
    /// The plan's staging area with its level-0 array, the element's spec and dtype: what a part writer and the
    /// committer work on. `CorruptMetadata` when the staged array is gone (create a new plan).
    pub(crate) fn staged_array(&self, store: &crate::Store) -> Result<(DataHandle, RasterSpec, DataType)> {
        let spec = self.raster_spec()?;
        let dtype = self.dtype()?;
        let dir = DataHandle::new(store.inner.storage.clone(), self.staging.clone());
        if !dir.exists("s0/zarr.json")? {
            return Err(Error::CorruptMetadata {
                path: dir.describe("s0/zarr.json"),
                reason: format!("the staged array of write plan {} is missing; create a new plan", self.txn),
            });
        }
        Ok((dir, spec, dtype))
    }

    /// Reads the plan `plan_id` (any accepted spelling); `PlanNotFound` when it does not exist.
    pub fn load(storage: &dyn Storage, plan_id: &str) -> Result<PlanRecord> {
        let id = canonical_id(plan_id)?;
        let key = plan_json_key(&id);
        let record: PlanRecord = get_json(storage, &key, "not a valid write plan")?.ok_or_else(|| Error::PlanNotFound {
            plan_id: plan_id.to_string(),
            reason: "no such plan in this store (never created here, or reclaimed by gc after being abandoned)".into(),
        })?;
        if record.format > PLAN_FORMAT {
            return Err(Error::CorruptMetadata {
                path: storage.location().join(&key),
                reason: format!("plan format {} is newer than this zarrtx ({PLAN_FORMAT}); upgrade", record.format),
            });
        }
        Ok(record)
    }

    /// The spec.
    pub fn raster_spec(&self) -> Result<RasterSpec> {
        self.spec.to_spec(&plan_json_key(&self.plan_id))
    }

    /// The data type.
    pub fn dtype(&self) -> Result<DataType> {
        DataType::from_zarr_name(&self.data_type).ok_or_else(|| Error::CorruptMetadata {
            path: plan_json_key(&self.plan_id).into(),
            reason: format!("unknown data type '{}'", self.data_type),
        })
    }

    /// The public description.
    pub fn info(&self) -> Result<PlanInfo> {
        Ok(PlanInfo {
            plan_id: self.plan_id.clone(),
            name: self.name.to_string(),
            element_type: self.element_type,
            spec: self.raster_spec()?,
            shape: self.shape.clone(),
            data_type: self.dtype()?,
            write_unit: self.write_unit.clone(),
            parts: self.parts.clone(),
            staging: self.staging.clone(),
            created_ms: self.created_ms,
            created_version: self.created_version,
            writer: self.writer.clone(),
            overwrite: self.overwrite,
        })
    }
}
