//! zarrtx: many writers, one SpatialData / Zarr v3 store.
//!
//! Threads, processes and nodes add, overwrite and delete elements of one store at the same time. A commit log of
//! immutable, create-if-absent entries decides every race; element data is staged where no other writer looks and
//! installed after its commit; the root `zarr.json` (with inline consolidated metadata) is the published view that
//! unmodified spatialdata / zarr-python readers see. See `docs/design.md` in the repository.
#![warn(missing_docs)]

pub mod adopt;
pub mod commit;
pub mod error;
pub mod layout;
pub mod log;
pub mod maintenance;
pub mod meta;
pub mod name;
pub mod settings;
pub(crate) mod parallel;
pub mod hierarchy;
pub mod plan;
pub mod probe;
pub mod progress;
pub mod publish;
pub mod raster;
pub(crate) mod retire;
pub mod snapshot;
pub mod storage;
pub mod store;
pub mod transform;
pub mod user_lock;

pub use error::{Error, Result};
pub use log::WriterInfo;
pub use maintenance::{GcReport, VerifyReport};
pub use name::{ElementName, ElementType};
pub use plan::{PartLayout, PartOutcome, PartRecord, PlanCommit, PlanInfo, PlanOptions, PlanStatus};
pub use progress::{NoProgress, Progress};
pub use raster::{
    Compression, DataType, Pyramid, RasterArray, RasterBlock, RasterKind, RasterSource, RasterSpec,
};
pub use snapshot::{ElementInfo, Snapshot};
pub use hierarchy::{ArrayCommit, ArrayMode, ArrayPlanInfo, ArrayPlanStatus, ArraySpec, ArrayTarget, Hierarchy};
pub use store::{AddOptions, CommitInfo, CommitRecord, OpenOptions, Store};
pub use transform::Transformation;
pub use user_lock::{LockMode, UserLock};

pub mod vector;
pub use vector::{Geometry, PointsSpec, ShapesData, ShapesIndex, ShapesKind, ShapesSpec, VectorInfo};
pub mod table;
