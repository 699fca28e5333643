//! The tera templates of cargo-onex, embedded with `include_str!` so that
//! every crate that renders them packages on its own.
#![deny(missing_docs)]

/// A template: its name (as tera knows it) and its source.
pub type Template = (&'static str, &'static str);

/// Every template, in a stable order.
pub const ALL: &[Template] = &[];
