//! The user-facing settings of a raster element as text, one source for the CLI, the Python package and
//! `zarrtx.dask`: the compression syntax ([`Compression`]'s `FromStr` and `Display`) and the axes an array gets when
//! the caller names none ([`default_dims`]). The default chunk shape is [`super::default_chunk_shape`].
//!
//! Compression is written as one of:
//!
//! - `none`
//! - `zstd` or `zstd:LEVEL` (LEVEL -131072..=22; 0, the default, is zstd's own default level)
//! - `blosc-CNAME` or `blosc-CNAME:LEVEL` (CNAME `blosclz`, `lz4`, `lz4hc`, `zlib` or `zstd`; LEVEL 0..=9, default
//!   0), byte shuffle on
//! - `blosc` (`blosc-lz4:5`) or `blosc:CNAME:LEVEL` (`blosc-CNAME:LEVEL`), the command line's older spellings

use super::validate::{BLOSC_CNAMES, ZSTD_LEVELS};
use super::{Compression, RasterKind};
use std::fmt;
use std::str::FromStr;

/// The accepted compression spellings, as error messages list them.
pub const COMPRESSION_FORMS: &str = "none, zstd, zstd:LEVEL, blosc-CNAME, blosc-CNAME:LEVEL, blosc or \
    blosc:CNAME:LEVEL (CNAME blosclz, lz4, lz4hc, zlib or zstd)";

/// Why a compression text was refused; each message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionSyntaxError {
    /// Not one of the accepted forms.
    #[error("unknown compression '{text}': use {COMPRESSION_FORMS}")]
    UnknownForm {
        /// The text given.
        text: String,
    },
    /// A zstd level that is not an integer in [`ZSTD_LEVELS`].
    #[error("zstd level '{level}' is not an integer from {} to {}", ZSTD_LEVELS.start(), ZSTD_LEVELS.end())]
    ZstdLevel {
        /// The level given.
        level: String,
    },
    /// A blosc compressor that is not one of [`BLOSC_CNAMES`].
    #[error("blosc compressor '{cname}' is unknown; use one of {}", BLOSC_CNAMES.join(", "))]
    BloscCompressor {
        /// The compressor given.
        cname: String,
    },
    /// A blosc level that is not an integer from 0 to 9.
    #[error("blosc level '{level}' is not an integer from 0 to 9")]
    BloscLevel {
        /// The level given.
        level: String,
    },
}

fn zstd(level: Option<&str>) -> Result<Compression, CompressionSyntaxError> {
    let Some(text) = level else {
        return Ok(Compression::Zstd { level: 0 });
    };
    text.parse::<i32>()
        .ok()
        .filter(|l| ZSTD_LEVELS.contains(l))
        .map(|level| Compression::Zstd { level })
        .ok_or_else(|| CompressionSyntaxError::ZstdLevel { level: text.to_string() })
}

fn blosc(cname: &str, level: Option<&str>) -> Result<Compression, CompressionSyntaxError> {
    if !BLOSC_CNAMES.contains(&cname) {
        return Err(CompressionSyntaxError::BloscCompressor { cname: cname.to_string() });
    }
    let clevel = match level {
        None => 0,
        Some(text) => text
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= 9)
            .ok_or_else(|| CompressionSyntaxError::BloscLevel { level: text.to_string() })?,
    };
    Ok(Compression::Blosc { cname: cname.to_string(), clevel, shuffle: true })
}

impl FromStr for Compression {
    type Err = CompressionSyntaxError;

    /// Parses the syntax of the module documentation.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unknown = || CompressionSyntaxError::UnknownForm { text: text.to_string() };
        let (codec, level) = match text.split_once(':') {
            Some((codec, level)) => (codec, Some(level)),
            None => (text, None),
        };
        match (codec, level) {
            ("none", None) => Ok(Compression::None),
            ("zstd", level) => zstd(level),
            ("blosc", None) => Ok(Compression::Blosc { cname: "lz4".into(), clevel: 5, shuffle: true }),
            ("blosc", Some(rest)) => {
                let (cname, level) = rest.split_once(':').ok_or_else(unknown)?;
                blosc(cname, Some(level))
            }
            (codec, level) => match codec.strip_prefix("blosc-") {
                Some(cname) => blosc(cname, level),
                None => Err(unknown()),
            },
        }
    }
}

impl fmt::Display for Compression {
    /// The text `from_str` reads back as this value: `none`, `zstd` (level 0), `zstd:LEVEL`,
    /// `blosc-CNAME:LEVEL`. The text syntax always shuffles, so a `Blosc` without shuffle prints as if with.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Zstd { level: 0 } => f.write_str("zstd"),
            Compression::Zstd { level } => write!(f, "zstd:{level}"),
            Compression::Blosc { cname, clevel, .. } => write!(f, "blosc-{cname}:{clevel}"),
        }
    }
}

/// The axes of a raster of `kind` with `ndim` dimensions when the caller names none, as spatialdata's models
/// expect them: images `c,y,x` (3-D) or `c,z,y,x` (4-D), labels `y,x` (2-D) or `z,y,x` (3-D); `None` for any other
/// number of dimensions (a 2-D image needs a channel axis first).
pub fn default_dims(kind: RasterKind, ndim: usize) -> Option<&'static [&'static str]> {
    match (kind, ndim) {
        (RasterKind::Image, 3) => Some(&["c", "y", "x"]),
        (RasterKind::Image, 4) => Some(&["c", "z", "y", "x"]),
        (RasterKind::Labels, 2) => Some(&["y", "x"]),
        (RasterKind::Labels, 3) => Some(&["z", "y", "x"]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Compression, CompressionSyntaxError> {
        s.parse()
    }

    fn blosc(cname: &str, clevel: u8) -> Compression {
        Compression::Blosc { cname: cname.into(), clevel, shuffle: true }
    }

    /// Every spelling the command line (`blosc`, `blosc:CNAME:LEVEL`; the CLI's own test moved here with its
    /// assertions) and the Python package (`codec[:level]`, a blosc level defaulting to 0 as its
    /// `compression_level` did) accepted, and what each means.
    #[test]
    fn compression_syntax() {
        let good = [
            ("none", Compression::None),
            ("zstd", Compression::Zstd { level: 0 }),
            ("zstd:5", Compression::Zstd { level: 5 }),
            ("zstd:3", Compression::Zstd { level: 3 }),
            ("blosc", blosc("lz4", 5)),
            ("blosc:zstd:3", blosc("zstd", 3)),
            ("blosc-lz4", blosc("lz4", 0)),
            ("blosc-zstd:7", blosc("zstd", 7)),
        ];
        for (text, want) in good {
            assert_eq!(parse(text).unwrap(), want, "{text}");
        }
        let cli_bad = ["zstd:99", "zstd:x", "blosc:foo:1", "blosc:lz4:10", "blosc:lz4", "lzma", ""];
        let python_bad = ["blosc-snappy", "blosc-lz4:12", "none:3", "zstd:", "Zstd", "blosc-", " zstd"];
        for bad in cli_bad.into_iter().chain(python_bad) {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_say_what_is_accepted() {
        let e = parse("lzma:99").unwrap_err();
        assert_eq!(e, CompressionSyntaxError::UnknownForm { text: "lzma:99".into() });
        assert!(e.to_string().contains("blosc-CNAME:LEVEL"), "{e}");
        assert!(parse("zstd:23").unwrap_err().to_string().contains("-131072 to 22"));
        assert!(parse("blosc-lz4:10").unwrap_err().to_string().contains("0 to 9"));
        assert!(parse("blosc:snappy:1").unwrap_err().to_string().contains("lz4, lz4hc, zlib, zstd"));
    }

    #[test]
    fn display_round_trips() {
        let values = [
            Compression::None,
            Compression::Zstd { level: 0 },
            Compression::Zstd { level: -5 },
            Compression::Zstd { level: 22 },
            blosc("lz4", 0),
            blosc("lz4", 5),
            blosc("zstd", 9),
            blosc("blosclz", 1),
            blosc("zlib", 3),
            blosc("lz4hc", 4),
        ];
        for c in values {
            assert_eq!(parse(&c.to_string()).unwrap(), c, "{c}");
        }
        assert_eq!(Compression::default().to_string(), "zstd");
        for text in ["none", "zstd", "zstd:3", "blosc-lz4:5"] {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn default_dims_by_kind_and_ndim() {
        assert_eq!(default_dims(RasterKind::Image, 3), Some(&["c", "y", "x"][..]));
        assert_eq!(default_dims(RasterKind::Image, 4), Some(&["c", "z", "y", "x"][..]));
        assert_eq!(default_dims(RasterKind::Labels, 2), Some(&["y", "x"][..]));
        assert_eq!(default_dims(RasterKind::Labels, 3), Some(&["z", "y", "x"][..]));
        for (kind, n) in [(RasterKind::Image, 2), (RasterKind::Image, 5), (RasterKind::Labels, 4), (RasterKind::Labels, 1)] {
            assert_eq!(default_dims(kind, n), None);
        }
    }
}
