//! Stage 4, generate: the node crate's code from templates: the manifest,
//! the build script, the contract copy, the node struct with its operation
//! wrappers and publishers, the handler stub and the README; or, for a
//! build script, the one module of a contract ([`generate_module`]).

use std::path::Path;

use serde::Serialize;

use super::{
    GENERATOR_VERSION, NodeModel, RenderedFile, RenderedFiles, StageError,
    build_contract::ConsumedModel,
    files::{FileKind, Ownership},
    paths,
    templates::{FileSpec, NodeTemplates},
};
use crate::{render, spec::NodeSpec};

/// How the node crate depends on the runtime and on onex-build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeDependency {
    /// Path dependencies, relative to the node crate's folder, `/`-separated.
    Path {
        /// The `onex` crate.
        onex: String,
        /// The `onex-build` crate.
        onex_build: String,
    },
    /// A version requirement for both, e.g. `0.1.0`.
    Version(String),
}

impl RuntimeDependency {
    /// The registry version of this generator.
    pub fn this_version() -> Self {
        RuntimeDependency::Version(GENERATOR_VERSION.to_owned())
    }

    /// Path dependencies for node crates inside `out_dir` (each in a folder
    /// of its own) on the crates in the folders `onex` and `onex_build`.
    pub fn from_crate_dirs(out_dir: &Path, onex: &Path, onex_build: &Path) -> Self {
        RuntimeDependency::Path {
            onex: format!("../{}", paths::relative(out_dir, onex)),
            onex_build: format!("../{}", paths::relative(out_dir, onex_build)),
        }
    }

    /// Path dependencies on the crates in the folders `onex` and
    /// `onex_build`, written as absolute paths: for a checkout that has no
    /// fixed place relative to the node crates (the source tree cargo-onex
    /// was installed from), so that a node crate moved within the user's
    /// project still finds it.
    pub fn absolute(onex: &Path, onex_build: &Path) -> Self {
        RuntimeDependency::Path {
            onex: paths::normalize(onex).to_string_lossy().into_owned(),
            onex_build: paths::normalize(onex_build).to_string_lossy().into_owned(),
        }
    }

    /// The inside of the TOML inline tables for `onex` and `onex-build`,
    /// e.g. `path = "../../onex"`.
    pub fn toml(&self) -> (String, String) {
        match self {
            RuntimeDependency::Path { onex, onex_build } => (
                format!("path = {}", toml_string(onex)),
                format!("path = {}", toml_string(onex_build)),
            ),
            RuntimeDependency::Version(v) => (
                format!("version = {}", toml_string(v)),
                format!("version = {}", toml_string(v)),
            ),
        }
    }
}

fn toml_string(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// What every node template reads.
#[derive(Debug, Serialize)]
pub struct TemplateContext<'a> {
    /// The node.
    pub node: &'a NodeModel,
    /// `path = "..."` or `version = "..."` for `onex`.
    pub onex_dependency: String,
    /// The same for `onex-build`.
    pub onex_build_dependency: String,
    /// The generator's version.
    pub generator_version: &'static str,
    /// The contract's path relative to the node crate's folder,
    /// `/`-separated (the manifest records it too); the contract's file
    /// name until [`TemplateContext::contract_path`] sets it.
    pub contract_path: String,
    /// The command that regenerates the node crate from its folder
    /// ([`super::manifest::regenerate_command`]).
    pub regenerate_command: String,
}

impl<'a> TemplateContext<'a> {
    /// The context for a node and its runtime dependency.
    pub fn new(node: &'a NodeModel, runtime: &RuntimeDependency) -> Self {
        let (onex_dependency, onex_build_dependency) = runtime.toml();
        TemplateContext {
            node,
            onex_dependency,
            onex_build_dependency,
            generator_version: GENERATOR_VERSION,
            contract_path: node.spec.contract_file.clone(),
            regenerate_command: super::manifest::regenerate_command(&node.spec.contract_file),
        }
    }

    /// Records where the contract lies, relative to the node crate's
    /// folder, `/`-separated: the README names it with the command that
    /// regenerates the crate.
    pub fn contract_path(mut self, relative: String) -> Self {
        self.regenerate_command = super::manifest::regenerate_command(&relative);
        self.contract_path = relative;
        self
    }

    /// The tera context every template of the node crate renders with.
    /// Built once per contract: serializing the node model is most of the
    /// cost of a render.
    pub fn to_tera(&self) -> Result<tera::Context, StageError> {
        tera::Context::from_serialize(self).map_err(|e| StageError::Template {
            template: "node/*".to_owned(),
            message: e.to_string(),
        })
    }
}

const FILES: &[FileSpec<'static>] = &[
    FileSpec {
        path: "Cargo.toml",
        template: "node/Cargo.toml.tera",
        kind: FileKind::Text,
        ownership: Ownership::Scaffold,
    },
    FileSpec {
        path: "build.rs",
        template: "node/build.rs.tera",
        kind: FileKind::Rust,
        ownership: Ownership::Generated,
    },
    FileSpec {
        path: "contract.yaml",
        template: "node/contract.yaml.tera",
        kind: FileKind::Text,
        ownership: Ownership::Generated,
    },
    FileSpec {
        path: "src/lib.rs",
        template: "node/lib.rs.tera",
        kind: FileKind::Rust,
        ownership: Ownership::Generated,
    },
    FileSpec {
        path: "src/handler.rs",
        template: "node/handler.rs.tera",
        kind: FileKind::Rust,
        ownership: Ownership::Scaffold,
    },
    FileSpec {
        path: "README.md",
        template: "node/README.md.tera",
        kind: FileKind::Text,
        ownership: Ownership::Generated,
    },
];

/// Renders the node crate's core files, and a copy of each consumed
/// contract.
pub fn generate(
    templates: &NodeTemplates,
    context: &tera::Context,
    contract: &Path,
    consumed: &[ConsumedModel],
) -> Result<RenderedFiles, StageError> {
    let mut files = FILES
        .iter()
        .map(|spec| templates.render(*spec, context, contract))
        .collect::<Result<RenderedFiles, StageError>>()?;
    for c in consumed {
        let mut context = context.clone();
        context.insert("consumed", c);
        let spec = FileSpec {
            path: &c.file,
            template: "node/consumed.yaml.tera",
            kind: FileKind::Text,
            ownership: Ownership::Generated,
        };
        files.push(templates.render(spec, &context, contract)?);
    }
    Ok(files)
}

/// The module of one contract, as a build script writes it: `{node}.rs`,
/// the `@generated` header, then the code of
/// [`render::MODULE_TEMPLATE`] as the template lays it out
/// ([`render::render_module_unformatted`]). Stages 5 and 5.5 parse and
/// print it when the build script asks for formatted modules.
pub fn generate_module(spec: &NodeSpec) -> Result<RenderedFile, StageError> {
    Ok(RenderedFile {
        path: format!("{}.rs", spec.name),
        template: render::MODULE_TEMPLATE.to_owned(),
        kind: FileKind::Rust,
        ownership: Ownership::Generated,
        text: render::render_module_unformatted(spec).map_err(StageError::Render)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each form of the dependency is a valid TOML inline table body, with
    /// quotes and backslashes in paths escaped.
    #[test]
    fn runtime_dependency_lines() {
        let relative = RuntimeDependency::from_crate_dirs(
            Path::new("/w/generated"),
            Path::new("/w/onex"),
            Path::new("/w/onex-build"),
        );
        assert_eq!(
            relative.toml(),
            (
                "path = \"../../onex\"".to_owned(),
                "path = \"../../onex-build\"".to_owned()
            )
        );
        let absolute = RuntimeDependency::absolute(
            Path::new("/src/a \"b\"/./onex"),
            Path::new("/src/c\\d/onex-build"),
        );
        assert_eq!(
            absolute.toml(),
            (
                "path = \"/src/a \\\"b\\\"/onex\"".to_owned(),
                "path = \"/src/c\\\\d/onex-build\"".to_owned()
            )
        );
        assert_eq!(
            RuntimeDependency::this_version().toml().0,
            format!("version = \"{GENERATOR_VERSION}\"")
        );
    }
}
