//! `cargo onex`: generate complete ONEX node crates from YAML contracts.

use std::process::ExitCode;

/// The runtime's allocator, mimalloc, rather than the system allocator: see
/// cargo-onex's Cargo.toml.
#[global_allocator]
static ALLOCATOR: onex::Allocator = onex::Allocator;

fn main() -> ExitCode {
    onex::allocator::init();
    match cargo_onex::run(std::env::args_os()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
