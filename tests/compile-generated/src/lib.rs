//! Every generated module of the workspace's contracts, compiled under the
//! strictest settings a user may choose. `tests/generated_modules.rs`
//! checks that [`SOURCES`] equals the committed snapshots.
#![deny(warnings, missing_docs)]
#![deny(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/modules.rs"));
