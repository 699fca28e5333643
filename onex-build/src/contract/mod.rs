//! The contract: its serde model, loading with diagnostics.

pub mod diagnostic;
pub mod hash;
pub mod load;
pub mod locate;
pub mod model;
pub mod suggest;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use hash::contract_hash;
pub use load::{LoadedContract, MAX_CONTRACT_BYTES, PARSE, load_file, load_str};
pub use locate::SourceMap;
pub use model::*;
