//! Element names and element types, validated exactly as spatialdata 0.8 validates them.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The five SpatialData element types; each is a fixed group directly under the store root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementType {
    /// Multiscale images (`c,y,x` or `c,z,y,x`).
    Images,
    /// Multiscale label masks (`y,x` or `z,y,x`, integer dtype).
    Labels,
    /// Point clouds stored as Parquet.
    Points,
    /// Shapes stored as GeoParquet.
    Shapes,
    /// AnnData tables.
    Tables,
}

impl ElementType {
    /// All element types, in the order spatialdata lists them.
    pub const ALL: [ElementType; 5] = [
        ElementType::Images,
        ElementType::Labels,
        ElementType::Points,
        ElementType::Shapes,
        ElementType::Tables,
    ];

    /// The name of the group directory that holds elements of this type.
    pub fn group(self) -> &'static str {
        match self {
            ElementType::Images => "images",
            ElementType::Labels => "labels",
            ElementType::Points => "points",
            ElementType::Shapes => "shapes",
            ElementType::Tables => "tables",
        }
    }

    /// Parses a type group name (`"images"`, `"labels"`, ...).
    pub fn from_group(s: &str) -> Option<Self> {
        ElementType::ALL.into_iter().find(|t| t.group() == s)
    }
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.group())
    }
}

/// A validated element name: non-empty, not `.`/`..`, not starting with `__` or `.`, only ASCII alphanumerics
/// and `_-.` (spatialdata's `check_valid_name`; a leading `.` is also refused because spatialdata skips such
/// entries when reading).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ElementName(String);

impl ElementName {
    /// Validates `name`, returning a typed error that says what is wrong and what is accepted.
    pub fn new(name: &str) -> Result<Self> {
        let refuse = |reason: &str| {
            Err(Error::InvalidName {
                name: name.to_string(),
                reason: reason.to_string(),
            })
        };
        if name.is_empty() {
            return refuse("the name is empty; use letters, digits, '_', '-' or '.'");
        }
        if name == "." || name == ".." {
            return refuse("'.' and '..' are reserved path names");
        }
        if name.starts_with("__") {
            return refuse("names may not start with '__' (reserved by spatialdata)");
        }
        if name.starts_with('.') {
            return refuse("names may not start with '.' (spatialdata skips such entries when reading)");
        }
        if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
            return refuse(&format!(
                "character {bad:?} is not allowed; use only letters, digits, '_', '-' and '.'"
            ));
        }
        if name.len() > 200 {
            return refuse("the name is longer than 200 characters");
        }
        Ok(ElementName(name.to_string()))
    }

    /// A label that names something other than an element in messages (the path of an array in a plain Zarr
    /// hierarchy), unchecked. Never used as an element name or a path.
    pub(crate) fn label(text: &str) -> Self {
        ElementName(text.to_string())
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key under which names collide: spatialdata requires uniqueness case-insensitively.
    pub fn collision_key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for ElementName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ElementName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        ElementName::new(&s)
    }
}

impl From<ElementName> for String {
    fn from(n: ElementName) -> String {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_spatialdata_names() {
        for ok in ["a", "cells_1", "tile-0.3", "A.b-c_D"] {
            assert_eq!(ElementName::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_invalid_names_with_reason() {
        for bad in ["", ".", "..", "__x", ".hidden", "ci rc", "a/b", "é"] {
            match ElementName::new(bad) {
                Err(Error::InvalidName { name, .. }) => assert_eq!(name, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn collision_key_is_case_insensitive() {
        assert_eq!(
            ElementName::new("Cells").unwrap().collision_key(),
            ElementName::new("cELLS").unwrap().collision_key()
        );
    }
}
