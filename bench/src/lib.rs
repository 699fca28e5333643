//! Benchmarks of cargo-onex that measure what users feel.
//!
//! `bench/run` builds the binaries of this crate in release, runs them and
//! the criterion benches, and rewrites `BENCHMARKS.md`. The library holds
//! what the binaries share: synthetic contracts, statistics, CPU times and
//! the JSON result format.
#![deny(missing_docs)]

pub mod cpu;
pub mod event;
pub mod stats;
pub mod synth;
