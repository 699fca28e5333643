//! Stage 4.5, event-bus integration: the node's lifecycle
//! (`initialize()`: introspection, heartbeat, subscriptions; `shutdown()`),
//! the start-up binary, the `.env` template and the compose fragment.
//!
//! Required for effect and orchestrator nodes; compute and reducer nodes
//! opt in with `event_bus: { enabled: true }`. Without it a node crate is a
//! library whose operations publish on a bus the caller provides.

use std::path::Path;

use super::{
    RenderedFiles, StageError,
    files::{FileKind, Ownership},
    generate::TemplateContext,
    templates::{FileSpec, NodeTemplates},
};

const FILES: &[FileSpec<'static>] = &[
    FileSpec {
        path: "src/lifecycle.rs",
        template: "node/lifecycle.rs.tera",
        kind: FileKind::Rust,
        ownership: Ownership::Generated,
    },
    FileSpec {
        path: "src/main.rs",
        template: "node/main.rs.tera",
        kind: FileKind::Rust,
        ownership: Ownership::Generated,
    },
    FileSpec {
        path: ".env.template",
        template: "node/env.template.tera",
        kind: FileKind::Text,
        ownership: Ownership::Generated,
    },
    FileSpec {
        path: "compose.yaml",
        template: "node/compose.yaml.tera",
        kind: FileKind::Text,
        ownership: Ownership::Generated,
    },
];

/// Renders the event-bus files, or nothing when the node does not use the
/// bus.
pub fn event_bus(
    templates: &NodeTemplates,
    node: &TemplateContext<'_>,
    context: &tera::Context,
    contract: &Path,
) -> Result<RenderedFiles, StageError> {
    if !node.node.spec.event_bus.enabled {
        return Ok(Vec::new());
    }
    FILES
        .iter()
        .map(|spec| templates.render(*spec, context, contract))
        .collect()
}
