//! The store API for points and shapes: adding them through the generic stage-then-commit path
//! ([`Store::add_staged`]) and reading them back relocation-safely ([`Snapshot::read_with`]). Every byte goes
//! through the store's storage (Parquet is encoded and decoded in memory).

use crate::error::{Error, Result};
use crate::name::{ElementName, ElementType};
use crate::snapshot::Snapshot;
use crate::store::{AddOptions, CommitInfo, Store};
use crate::vector::{self, PointsSpec, ShapesData, ShapesSpec, VectorInfo};
use arrow_array::RecordBatch;

impl Store {
    /// Adds a points element from record batches with columns `x`, `y` (optionally `z`; int32, int64, float32 or
    /// float64, no nulls) and any others. Everything is validated first (nothing is written for bad input); the
    /// data is then written as `points.parquet/part.N.parquet` into a private staging area (one part in memory at
    /// a time), committed, and installed at `points/<name>`.
    pub fn add_points(
        &self,
        name: &str,
        batches: &[RecordBatch],
        spec: &PointsSpec,
        options: &AddOptions<'_>,
    ) -> Result<CommitInfo> {
        let name = ElementName::new(name)?;
        vector::points::validate(&name, batches, spec)?;
        let durable = self.durable();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        options.progress.set_total(rows as u64);
        let info = self.add_staged(&name, ElementType::Points, options.overwrite, |data| {
            vector::points::write_element(data, &name, batches, spec, durable)
        })?;
        options.progress.advance(rows as u64);
        Ok(info)
    }

    /// Adds a shapes element: circles (point geometries with a radius) or polygons/multipolygons, with optional
    /// extra columns and index. Validated first (nothing is written for bad input), then written as one
    /// GeoParquet file into a private staging area, committed, and installed at `shapes/<name>`.
    pub fn add_shapes(
        &self,
        name: &str,
        data: &ShapesData,
        spec: &ShapesSpec,
        options: &AddOptions<'_>,
    ) -> Result<CommitInfo> {
        let name = ElementName::new(name)?;
        vector::shapes::validate(&name, data, spec)?;
        // Encoding problems (e.g. a column type Parquet cannot hold) surface here, before the store is touched.
        vector::shapes::to_record_batch(&name, data)?;
        let durable = self.durable();
        let n = data.geometry.len() as u64;
        options.progress.set_total(n);
        let info = self.add_staged(&name, ElementType::Shapes, options.overwrite, |staged| {
            vector::shapes::write_element(staged, &name, data, spec, durable)
        })?;
        options.progress.advance(n);
        Ok(info)
    }
}

fn expect_type(snap: &Snapshot, name: &str, want: ElementType) -> Result<()> {
    let record = snap.record_of(name)?;
    if record.element_type != want {
        return Err(Error::InvalidElement {
            name: record.name.to_string(),
            reason: format!("it is a {} element, not {want}", record.element_type),
        });
    }
    Ok(())
}

impl Snapshot {
    /// Every row of points element `name` as committed at this snapshot's version, part file by part file
    /// (without the dask index column).
    pub fn read_points(&self, name: &str) -> Result<Vec<RecordBatch>> {
        expect_type(self, name, ElementType::Points)?;
        self.read_with(name, |data, _| vector::points::read_element(data))
    }

    /// The part files of points element `name` in the order [`Snapshot::read_points`] reads them, as keys relative
    /// to the element (`points.parquet/part.0.parquet`, ...; `points.parquet` when it is one file). Read each one
    /// with [`Snapshot::read_points_part`] or [`Snapshot::read_element_file`]: a points element can be read part by
    /// part (one partition of a lazy data frame per part), pinned to this snapshot's version.
    pub fn points_parts(&self, name: &str) -> Result<Vec<String>> {
        expect_type(self, name, ElementType::Points)?;
        self.read_with(name, |data, _| vector::points::part_files(data))
    }

    /// The rows of one part file (as listed by [`Snapshot::points_parts`]) of points element `name`, without the
    /// dask index column.
    pub fn read_points_part(&self, name: &str, part: &str) -> Result<Vec<RecordBatch>> {
        expect_type(self, name, ElementType::Points)?;
        let parts = self.points_parts(name)?;
        if !parts.iter().any(|p| p == part) {
            return Err(Error::InvalidElement {
                name: name.to_string(),
                reason: format!("'{part}' is not one of its part files ({})", parts.join(", ")),
            });
        }
        self.read_with(name, |data, _| vector::points::read_part(data, part))
    }

    /// Shapes element `name` as committed at this snapshot's version.
    pub fn read_shapes(&self, name: &str) -> Result<ShapesData> {
        expect_type(self, name, ElementType::Shapes)?;
        self.read_with(name, |data, _| vector::shapes::read_element(data))
    }

    /// Rows, columns, geometry types, keys and transformations of a points or shapes element.
    pub fn vector_info(&self, name: &str) -> Result<VectorInfo> {
        let ty = self.record_of(name)?.element_type;
        if !matches!(ty, ElementType::Points | ElementType::Shapes) {
            return Err(Error::InvalidElement {
                name: name.to_string(),
                reason: format!("it is a {ty} element, not points or shapes"),
            });
        }
        self.read_with(name, |data, tree| vector::describe(ty, data, tree))
    }
}
