//! The quick start: typed events for the `pricing` node, generated from
//! `contracts/pricing.yaml` by `build.rs`.
#![deny(missing_docs)]

/// The `pricing` node's types, events and topics.
pub mod pricing {
    onex::include_contract!("pricing");
}
