//! The contract: its serde model, loading with diagnostics.

pub mod diagnostic;
pub mod load;
pub mod model;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use load::{LoadedContract, load_file, load_str};
pub use model::*;
