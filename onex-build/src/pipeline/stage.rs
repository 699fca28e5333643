//! The stages, in order.

use std::fmt;

/// One stage of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// 1: read YAML, deserialize with precise errors.
    Parse,
    /// 2: quality gates on the contract as written; errors stop the
    /// pipeline.
    PreValidate,
    /// 3: normalize the contract into the model the templates read.
    BuildContract,
    /// 4: render the node crate's code from templates.
    Generate,
    /// 4.5: lifecycle, introspection, heartbeat, startup binary, `.env`
    /// template and compose fragment.
    EventBus,
    /// 5: every generated `.rs` file parses.
    PostValidate,
    /// 5.5: format with prettyplease.
    Refine,
    /// 6: write what changed, atomically.
    Write,
    /// 7: `cargo check` of the generated crate.
    CompileCheck,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 9] = [
        Stage::Parse,
        Stage::PreValidate,
        Stage::BuildContract,
        Stage::Generate,
        Stage::EventBus,
        Stage::PostValidate,
        Stage::Refine,
        Stage::Write,
        Stage::CompileCheck,
    ];

    /// The stage number as the design writes it: `1`, `4.5`, ...
    pub const fn number(self) -> &'static str {
        match self {
            Stage::Parse => "1",
            Stage::PreValidate => "2",
            Stage::BuildContract => "3",
            Stage::Generate => "4",
            Stage::EventBus => "4.5",
            Stage::PostValidate => "5",
            Stage::Refine => "5.5",
            Stage::Write => "6",
            Stage::CompileCheck => "7",
        }
    }

    /// The stage's name: `parse`, `event bus integration`, ...
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Parse => "parse",
            Stage::BuildContract => "build contract",
            Stage::PreValidate => "pre-validate",
            Stage::Generate => "generate",
            Stage::EventBus => "event bus integration",
            Stage::PostValidate => "post-validate",
            Stage::Refine => "refine",
            Stage::Write => "write",
            Stage::CompileCheck => "compile check",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stage {} ({})", self.number(), self.name())
    }
}
