//! onex-build: compiles ONEX YAML node contracts into typed Rust.
//!
//! Use it from a build script, like prost-build: every contract becomes a
//! module of typed events, topic constants, an event enum that decodes
//! envelopes, and the node's introspection event.
//!
//! # Quick start
//!
//! 1. Depend on the runtime, and on onex-build for the build script:
//!
//!    ```toml
//!    [dependencies]
//!    onex = { version = "0.1", default-features = false }
//!
//!    [build-dependencies]
//!    onex-build = "0.1"
//!    ```
//!
//! 2. Put contracts in `contracts/`, e.g. `contracts/pricing.yaml`:
//!
//!    ```yaml
//!    contract_version: 1
//!    node:
//!      name: pricing
//!      node_type: compute
//!      version: 1.0.0
//!      domain: commerce
//!    types:
//!      - name: QuoteRequest
//!        fields:
//!          - { name: sku, type: string }
//!          - { name: quantity, type: u32 }
//!      - name: Quote
//!        fields:
//!          - { name: total_cents, type: u64 }
//!    operations:
//!      - { name: price_quote, input: QuoteRequest, output: Quote }
//!    ```
//!
//! 3. Compile them in `build.rs`. On an invalid contract the build stops
//!    with one readable report (file, line, field, fix):
//!
//!    ```no_run
//!    // build.rs
//!    fn main() {
//!        onex_build::Builder::new()
//!            .contracts("contracts")
//!            .compile_or_exit();
//!    }
//!    ```
//!
//!    or, returning the error instead, `onex_build::compile_contracts("contracts")`.
//!
//! 4. Include the generated module, named after the contract's node:
//!
//!    ```ignore
//!    /// The pricing node's events.
//!    pub mod pricing {
//!        onex::include_contract!("pricing");
//!    }
//!
//!    use onex::{EventSet, OnexEnvelopeV1, SourceInfo};
//!
//!    let started = pricing::PriceQuoteStarted::new(node_id, correlation_id);
//!    let envelope = OnexEnvelopeV1::wrap(&started, &source, Some(correlation_id))?;
//!    // `pricing::topics::PRICE_QUOTE_STARTED` is the topic; the bus adds the
//!    // environment prefix.
//!    let decoded = pricing::PricingEvent::decode(&envelope)?;
//!    ```
//!
//! # What a module contains
//!
//! For a node `postgres_writer` of type `effect`:
//!
//! - constants `NODE_NAME`, `NODE_STRUCT_NAME` (`NodePostgresWriterEffect`),
//!   `SERVICE`, `NODE_TYPE`, `VERSION`, `DOMAIN`, `ACTIONS`, `TAGS`, ...;
//! - the contract's named types (structs and enums, serde-ready);
//! - one struct per event, implementing `onex::Event` (event type, version,
//!   category and topic as constants): the custom events, and the derived
//!   ones: `WriteRecordStarted` / `Completed` / `Failed` per operation,
//!   `StateChanged`, `MetricRecorded`, workflow step and workflow events for
//!   orchestrators, `StateUpdated` for reducers;
//! - `pub mod topics` with every topic, namespace-free;
//! - `State`, the FSM, when the contract has states;
//! - `PostgresWriterEvent`, the enum of every event (introspection and
//!   heartbeat included) implementing `onex::EventSet`, and `EVENT_TYPES`;
//! - `introspection(node_id, correlation_id)` and `heartbeat(...)`.
//!
//! Generated code names third-party crates only through the runtime's
//! re-exports (`::onex::serde`, `::onex::uuid`, ...), so the crate needs no
//! other dependency. See [`Builder`] for extra derives, extern types and the
//! runtime path.
//!
//! # Build-script time
//!
//! Cargo compiles build scripts and their dependencies unoptimized. The
//! [`Builder`] loads, validates and renders the contracts on
//! [`std::thread::available_parallelism`] threads; most of the rest is
//! parsing every module with syn and printing it with prettyplease. With
//! many contracts:
//!
//! - [`Builder::format`]`(false)` writes the modules as the templates lay
//!   them out, without that pass: the same code, about three times faster,
//!   but no syntax check and a plainer layout;
//! - or let cargo optimize the build script's dependencies:
//!
//!   ```toml
//!   [profile.dev.build-override]
//!   opt-level = 3
//!   ```
#![deny(missing_docs)]
// The build-script examples show `build.rs` files, whose `fn main` is the point.
#![allow(clippy::needless_doctest_main)]

pub mod builder;
pub mod contract;
pub mod error;
pub mod interop;
pub mod naming;
pub mod pipeline;
pub mod render;
pub mod spec;
pub mod validate;

pub use builder::{Builder, GeneratedFile, compile_contracts};
pub use error::Error;
