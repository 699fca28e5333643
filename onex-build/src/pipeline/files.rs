//! The files of a node crate as they move through stages 4 to 6.

/// The marker every file the generator owns carries near its top. A file
/// without it belongs to the user and is never overwritten.
pub const GENERATED_MARKER: &str = "@generated";

/// Who owns a file of the node crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ownership {
    /// The generator: rewritten whenever its content changes; must carry
    /// [`GENERATED_MARKER`].
    Generated,
    /// The user: written once when missing, then never touched
    /// (`src/handler.rs`, `Cargo.toml`).
    Scaffold,
}

/// What kind of text a file holds, which decides stages 5 and 5.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// Rust source: parsed in stage 5, formatted in stage 5.5.
    Rust,
    /// Anything else (TOML, YAML, Markdown, `.env`): passed through.
    Text,
}

/// A file as a template rendered it (stages 4 and 4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Path inside the node crate, `/`-separated, e.g. `src/lib.rs`.
    pub path: String,
    /// The template that produced it, for error messages.
    pub template: String,
    /// Rust or text.
    pub kind: FileKind,
    /// Who owns it.
    pub ownership: Ownership,
    /// The rendered text.
    pub text: String,
}

/// The rendered files of one node, in a stable order.
pub type RenderedFiles = Vec<RenderedFile>;

/// A file after stage 5: Rust files parsed, text files as they were.
#[derive(Clone)]
pub struct ParsedFile {
    /// The rendered file.
    pub rendered: RenderedFile,
    /// Its syntax tree when it is Rust.
    pub syntax: Option<syn::File>,
}

impl std::fmt::Debug for ParsedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedFile")
            .field("rendered", &self.rendered)
            .field("parsed", &self.syntax.is_some())
            .finish()
    }
}

/// The parsed files of one node.
pub type ParsedFiles = Vec<ParsedFile>;

/// A file ready to be written (after stage 5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFile {
    /// Path inside the node crate, `/`-separated.
    pub path: String,
    /// Who owns it.
    pub ownership: Ownership,
    /// The final bytes.
    pub contents: String,
}

/// The final files of one node crate, sorted by path.
pub type NodeFiles = Vec<NodeFile>;
