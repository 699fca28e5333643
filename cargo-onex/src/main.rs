//! `cargo onex`: generate complete ONEX node crates from YAML contracts.

use std::process::ExitCode;

fn main() -> ExitCode {
    match cargo_onex::run(std::env::args_os()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
