//! Commit entries: what one committed transaction did. Entries are immutable JSON files created with
//! create-if-absent at `.zarrtx/log/<version>.json`.

use crate::meta::NodeTree;
use crate::name::{ElementName, ElementType};
use serde::{Deserialize, Serialize};

/// Who wrote a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterInfo {
    /// Host name of the writer.
    pub host: String,
    /// Process id of the writer.
    pub pid: u32,
    /// Optional label (from the `ZARRTX_WRITER_LABEL` environment variable), e.g. a worker or job id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl WriterInfo {
    /// Describes the current process.
    pub fn current() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "unknown".to_string());
        WriterInfo {
            host,
            pid: std::process::id(),
            label: std::env::var("ZARRTX_WRITER_LABEL").ok().filter(|l| !l.is_empty()),
        }
    }
}

/// An element as recorded by a commit: enough to publish it without touching its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElementDescriptor {
    /// The element's name.
    pub name: ElementName,
    /// Its type group.
    pub element_type: ElementType,
    /// Every `zarr.json` of its subtree.
    pub tree: NodeTree,
}

/// One operation of a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Creates the store (version 0 of a new store).
    Init {
        /// Attributes of the root group.
        root_attributes: serde_json::Map<String, serde_json::Value>,
    },
    /// Takes over a store written by another tool (version 0 of an adopted store); data stays where it is.
    Adopt {
        /// Attributes of the root group, as found.
        root_attributes: serde_json::Map<String, serde_json::Value>,
        /// The elements found.
        elements: Vec<ElementDescriptor>,
    },
    /// Adds an element whose complete data is staged at `staged`; replaces `displaces` when overwriting.
    Add {
        /// The new element.
        element: ElementDescriptor,
        /// Key of the staged data, installed at `<type>/<name>` after the commit.
        staged: String,
        /// Instance-id index runs of a table's initial rows (keys under `.zarrtx/tableidx/`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        id_runs: Vec<String>,
        /// The committed element this one replaces (same name, case-insensitively), when overwriting.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        displaces: Option<(ElementType, ElementName)>,
    },
    /// Appends rows to a committed table. The rows' chunks were written beyond the committed length before this
    /// commit; publishing writes the table's grown `zarr.json` documents and `replaced_files`.
    Append {
        /// The table's name as committed.
        table: ElementName,
        /// Version of the commit that added this generation of the table.
        table_version: u64,
        /// Rows before the append.
        base_rows: u64,
        /// Rows appended.
        new_rows: u64,
        /// The table's complete metadata tree after the append.
        tree: NodeTree,
        /// Small whole files (path relative to the table) written when the append is published (entries written
        /// before appends were staged; staged appends carry them in `staged_files`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        replaced_files: Vec<(String, Vec<u8>)>,
        /// Where the append's files were staged (`.zarrtx/staging/<txn>`): installing the append moves each of
        /// `staged_files` over the table's file of the same relative path, in order. `None` for appends written
        /// in place by earlier versions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        staged: Option<String>,
        /// The staged files (paths relative to the table and to `staged`), in installation order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        staged_files: Vec<String>,
        /// Instance-id index runs written by this append (keys under `.zarrtx/tableidx/`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        id_runs: Vec<String>,
    },
    /// Removes an element; its data moves to the trash until gc.
    Delete {
        /// The element's type group.
        element_type: ElementType,
        /// The element's name.
        name: ElementName,
    },
}

impl Op {
    /// One line describing the operation, for `log` and history.
    pub fn summary(&self) -> String {
        match self {
            Op::Init { .. } => "create store".to_string(),
            Op::Adopt { elements, .. } => format!("adopt existing store ({} elements)", elements.len()),
            Op::Add { element, displaces, .. } => format!(
                "{} {}/{}",
                if displaces.is_some() { "overwrite" } else { "add" },
                element.element_type,
                element.name
            ),
            Op::Delete { element_type, name } => format!("delete {element_type}/{name}"),
            Op::Append { table, base_rows, new_rows, .. } => {
                format!("append {new_rows} rows to tables/{table} (now {})", base_rows + new_rows)
            }
        }
    }
}

/// One committed transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Layout format of the entry.
    pub format: u32,
    /// The version this entry creates (its file name).
    pub version: u64,
    /// Unique id of the transaction: how a writer recognises its own entry after an ambiguous failure.
    pub txn: String,
    /// Milliseconds since the Unix epoch when the entry was written.
    pub timestamp_ms: u64,
    /// Who wrote it.
    pub writer: WriterInfo,
    /// What it did.
    pub ops: Vec<Op>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
