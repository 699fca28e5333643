//! The node crate's templates (`templates/node/*.tera` in the templates
//! crate), rendered to text through the shared [`Renderer`]; stages 5 and
//! 5.5 parse and print what they render, which completes the one rendering
//! path (tera, then syn, then prettyplease).

use std::path::Path;

use super::{
    StageError,
    files::{FileKind, Ownership, RenderedFile},
    manifest::Fnv,
};
use crate::render::Renderer;

/// The prefix of the node crate's templates in `onex_templates::ALL`.
pub const NODE_TEMPLATE_PREFIX: &str = "node/";

/// The templates, loaded once per process.
#[derive(Debug)]
pub struct NodeTemplates {
    renderer: &'static Renderer,
}

impl NodeTemplates {
    /// Loads the templates.
    pub fn load() -> Result<Self, StageError> {
        let renderer = Renderer::global().map_err(StageError::Render)?;
        Ok(NodeTemplates { renderer })
    }

    /// Renders one template into a file of the node crate; `contract` is
    /// named in errors.
    pub fn render(
        &self,
        spec: FileSpec<'_>,
        context: &tera::Context,
        contract: &Path,
    ) -> Result<RenderedFile, StageError> {
        let text = self
            .renderer
            .render_text(spec.template, context, contract)
            .map_err(StageError::Render)?;
        Ok(RenderedFile {
            path: spec.path.to_owned(),
            template: spec.template.to_owned(),
            kind: spec.kind,
            ownership: spec.ownership,
            text,
        })
    }
}

/// Which template makes which file of the node crate.
#[derive(Debug, Clone, Copy)]
pub struct FileSpec<'a> {
    /// The file inside the node crate.
    pub path: &'a str,
    /// The template name.
    pub template: &'a str,
    /// Rust or text.
    pub kind: FileKind,
    /// Who owns the file.
    pub ownership: Ownership,
}

/// A fingerprint of every template (the node crate's build script renders
/// the module templates too), so that a changed template regenerates every
/// node.
pub fn templates_fingerprint() -> u64 {
    let mut hash = Fnv::new();
    for (name, source) in onex_templates::ALL
        .iter()
        .filter(|(name, _)| name.starts_with(NODE_TEMPLATE_PREFIX))
    {
        hash.write(name.as_bytes());
        hash.write(source.as_bytes());
    }
    hash.finish()
}
