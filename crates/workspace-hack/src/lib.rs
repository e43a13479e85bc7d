//! Feature unification only (see Cargo.toml): this crate has no code.
