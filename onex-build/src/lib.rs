//! onex-build: compiles ONEX YAML node contracts into typed Rust.
#![deny(missing_docs)]

pub mod contract;
pub mod naming;
