//! The `cargo onex generate` pipeline: a contract in, a complete node crate
//! out.
//!
//! | stage | module | in | out |
//! |---|---|---|---|
//! | 1 parse | [`parse`] | contract path | [`LoadedContract`] |
//! | 2 pre-validate | [`pre_validate`] | [`LoadedContract`] | gate results |
//! | 3 build contract | [`build_contract`] | [`LoadedContract`] | [`NodeModel`] |
//! | 4 generate | [`generate`] | [`NodeModel`] | [`RenderedFiles`] |
//! | 4.5 event bus | [`event_bus`] | [`NodeModel`] | [`RenderedFiles`] |
//! | 5 post-validate | [`post_validate`] | [`RenderedFiles`] | [`ParsedFiles`] |
//! | 5.5 refine | [`refine`] | [`ParsedFiles`] | [`NodeFiles`] |
//! | 6 write | [`write`] | [`NodeFiles`] | [`WriteOutcome`] |
//! | 7 compile check | [`compile_check`] | the node crate | `cargo check` result |
//!
//! Each stage is a function of its input alone; [`run`] strings them
//! together, times each one and skips stages 1 to 5.5 for a contract whose
//! node crate was generated from the same bytes by the same generator and is
//! intact (see [`manifest`]). Contracts are prepared on several threads and
//! taken in input order by one scheduler, `queue`.
//!
//! A build script's [`crate::Builder`] runs the same stages with one file
//! per contract, its module: [`parse::parse`], the gates of
//! [`pre_validate::check_with`] (or [`pre_validate::check_own`] for a
//! consumed contract), [`build_contract::build_spec`] with the
//! builder's settings, [`generate::generate_module`], and, only when asked to
//! format, [`post_validate::post_validate_file`] and
//! [`refine::refine_file`]; it writes with [`write::write_if_changed`], on
//! the same scheduler.

pub mod build_contract;
pub mod compile_check;
mod error;
pub mod event_bus;
pub mod files;
pub mod generate;
pub mod manifest;
pub mod parse;
pub mod paths;
pub mod post_validate;
pub mod pre_validate;
pub(crate) mod queue;
pub mod refine;
mod report;
mod run;
mod stage;
pub mod templates;
pub mod write;

pub use crate::contract::LoadedContract;
pub use build_contract::NodeModel;
pub use error::{PipelineError, StageError};
pub use files::{
    FileKind, GENERATED_MARKER, NodeFile, NodeFiles, Ownership, ParsedFile, ParsedFiles,
    RenderedFile, RenderedFiles,
};
pub use report::{ContractReport, GateResult, NodeOutcome, PipelineReport, TimingTable};
pub use run::{Mode, Progress, Request, RuntimeDependency, run, run_with_progress};
pub use stage::Stage;
pub use write::WriteOutcome;

/// The generator's version, part of every fingerprint: a new generator
/// regenerates every node.
pub const GENERATOR_VERSION: &str = env!("CARGO_PKG_VERSION");
