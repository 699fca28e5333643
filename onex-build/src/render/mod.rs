//! Stages 4 and 5.5, generate and refine: the one rendering path.
//!
//! Every Rust file onex-build or `cargo onex` writes is rendered here: tera
//! renders text from a template of the `onex-templates` crate (stage 4),
//! `syn::parse_file` parses it (stage 5; an error names the template and
//! the contract, and nothing is written), and [`print_rust`] prints it with
//! prettyplease (stage 5.5, the one format step), keeping the `@generated`
//! header. Identical input gives byte-identical output.
//!
//! The one exception is a build script's default (`Builder::format`,
//! off unless asked): [`render_module_unformatted`] returns what tera
//! renders, the same tokens without the syntax check and the printing,
//! which are most of the time an unoptimized build script spends. The
//! module templates are therefore written to render readable, indented
//! code.
//!
//! Templates never paste contract text into code. They use three filters:
//!
//! - `doc`: text to `///` doc comments (see [`escape::doc_comments`]),
//!   indented by the `indent` argument (spaces, default 0), with no line
//!   break after the last line: the documented item goes on the next line;
//!   `inner=true` writes `//!` lines, the docs of the enclosing crate;
//! - `lit`: text to a Rust string literal (see [`escape::string_literal`]);
//! - `ident`: writes a value as a Rust identifier with
//!   [`naming::rust_ident`](crate::naming::rust_ident) (`type` becomes
//!   `r#type`) and fails the render when it cannot be one.
//!
//! The node crate's other files have one filter per format:
//! `toml_str` (a TOML string), `yaml_str` (a YAML double-quoted scalar),
//! `env_value` (an `.env` value), `one_line` (text inside a `#` or `//` line
//! comment), `md_text` (Markdown prose) and `md_code` (a Markdown code
//! span).

pub mod escape;

use std::{collections::HashMap, path::Path, sync::OnceLock};

use crate::{error::Error, spec::NodeSpec};

/// The template that renders the module of one contract.
pub const MODULE_TEMPLATE: &str = "module/module.rs.tera";

/// A tera instance holding templates of `onex-templates`, with the escaping
/// filters registered. Use the shared ones: [`Renderer::global`] (every
/// template) or [`Renderer::modules`] (the module's templates).
pub struct Renderer {
    tera: tera::Tera,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.tera.get_template_names().collect();
        names.sort_unstable();
        f.debug_struct("Renderer")
            .field("templates", &names)
            .finish()
    }
}

impl Renderer {
    /// Loads every template of [`onex_templates::ALL`].
    pub fn new() -> Result<Renderer, Error> {
        Renderer::with_templates(onex_templates::ALL)
    }

    /// Loads the given templates only (parsing a template costs time in an
    /// unoptimized build script), e.g. [`onex_templates::MODULE`].
    pub fn with_templates(templates: &[onex_templates::Template]) -> Result<Renderer, Error> {
        let mut tera = tera::Tera::default();
        tera.autoescape_on(Vec::new());
        tera.add_raw_templates(templates.iter().copied())
            .map_err(|e| Error::Template {
                template: "(loading the templates)".to_owned(),
                contract: Default::default(),
                message: error_chain(&e),
            })?;
        tera.register_filter("doc", doc_filter);
        tera.register_filter("lit", lit_filter);
        tera.register_filter("ident", ident_filter);
        // The node crate's other formats (see `escape::toml_string` and
        // the functions after it).
        tera.register_filter("toml_str", text_filter("toml_str", escape::toml_string));
        tera.register_filter("yaml_str", text_filter("yaml_str", escape::yaml_string));
        tera.register_filter("env_value", text_filter("env_value", escape::env_value));
        tera.register_filter("one_line", text_filter("one_line", escape::one_line));
        tera.register_filter("md_text", text_filter("md_text", escape::markdown_text));
        tera.register_filter("md_code", text_filter("md_code", escape::markdown_code));
        Ok(Renderer { tera })
    }

    /// The renderer of every template, shared by every call in this process
    /// and built on first use: the one `cargo onex generate` uses.
    pub fn global() -> Result<&'static Renderer, Error> {
        static GLOBAL: OnceLock<Result<Renderer, String>> = OnceLock::new();
        shared(&GLOBAL, onex_templates::ALL)
    }

    /// The renderer of the module templates only
    /// ([`onex_templates::MODULE`]), shared by every call in this process
    /// and built on first use: the one [`crate::Builder`] uses.
    pub fn modules() -> Result<&'static Renderer, Error> {
        static MODULES: OnceLock<Result<Renderer, String>> = OnceLock::new();
        shared(&MODULES, onex_templates::MODULE)
    }

    /// Renders a template to text, with no parsing (for TOML, `.env`, YAML
    /// and other non-Rust files). `contract` is named in errors.
    pub fn render_text(
        &self,
        template: &str,
        context: &tera::Context,
        contract: &Path,
    ) -> Result<String, Error> {
        self.tera
            .render(template, context)
            .map_err(|e| Error::Template {
                template: template.to_owned(),
                contract: contract.to_owned(),
                message: error_chain(&e),
            })
    }

    /// Renders a Rust template: tera, then `syn::parse_file`, then
    /// `prettyplease::unparse`. `contract` is named in errors.
    pub fn render_rust(
        &self,
        template: &str,
        context: &tera::Context,
        contract: &Path,
    ) -> Result<String, Error> {
        let text = self.render_text(template, context, contract)?;
        format_rust(&text, template, contract)
    }
}

/// The renderer in `cell`, built from `templates` on first use.
fn shared(
    cell: &'static OnceLock<Result<Renderer, String>>,
    templates: &[onex_templates::Template],
) -> Result<&'static Renderer, Error> {
    cell.get_or_init(|| Renderer::with_templates(templates).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|message| Error::Template {
            template: "(loading the templates)".to_owned(),
            contract: Default::default(),
            message: message.clone(),
        })
}

/// Parses Rust source with syn and prints it with prettyplease
/// ([`print_rust`]), without its comments. Errors name `template` and
/// `contract`.
pub fn format_rust(text: &str, template: &str, contract: &Path) -> Result<String, Error> {
    Ok(print_rust("", &parse_rust(text, template, contract)?))
}

/// The one format step (stage 5.5): a parsed Rust file printed with
/// prettyplease, after the leading `//` lines of its `source` (the
/// `@generated` header), which prettyplease would drop (it keeps doc
/// comments only). Identical input prints identical output.
pub fn print_rust(source: &str, syntax: &syn::File) -> String {
    let formatted = prettyplease::unparse(syntax);
    let header: String = source
        .lines()
        .take_while(|l| {
            l.trim_start().starts_with("//")
                && !l.trim_start().starts_with("///")
                && !l.trim_start().starts_with("//!")
        })
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    if header.is_empty() {
        formatted
    } else {
        format!("{header}\n{formatted}")
    }
}

/// Parses Rust source with syn. The error names `template` and `contract`,
/// and quotes the line.
pub fn parse_rust(text: &str, template: &str, contract: &Path) -> Result<syn::File, Error> {
    match syn::parse_file(text) {
        Ok(file) => Ok(file),
        Err(e) => {
            let start = e.span().start();
            Err(Error::InvalidRust {
                template: template.to_owned(),
                contract: contract.to_owned(),
                line: start.line,
                column: start.column + 1,
                message: e.to_string(),
                snippet: text
                    .lines()
                    .nth(start.line.saturating_sub(1))
                    .unwrap_or("")
                    .trim()
                    .to_owned(),
            })
        }
    }
}

/// The first line of every generated module.
pub fn generated_header(contract_file: &str) -> String {
    format!("// @generated by onex-build from {contract_file}. Do not edit.\n")
}

/// Renders the module of one contract: the `@generated` header followed by
/// the formatted code of [`MODULE_TEMPLATE`] (tera, then syn, then
/// prettyplease): [`render_module_unformatted`], parsed and printed by
/// [`print_rust`].
pub fn render_module(spec: &NodeSpec) -> Result<String, Error> {
    let text = render_module_unformatted(spec)?;
    let syntax = parse_rust(&text, MODULE_TEMPLATE, Path::new(&spec.contract_file))?;
    Ok(print_rust(&text, &syntax))
}

/// Renders the module of one contract without parsing or printing it: the
/// `@generated` header followed by the code of [`MODULE_TEMPLATE`] as the
/// templates lay it out. The same tokens as [`render_module`], in less time
/// and with no syntax check.
pub fn render_module_unformatted(spec: &NodeSpec) -> Result<String, Error> {
    let code = render_module_code(spec)?;
    let mut out = generated_header(&spec.contract_file);
    out.reserve(code.len() + 2);
    out.push('\n');
    out.push_str(code.trim_matches('\n'));
    out.push('\n');
    Ok(out)
}

/// The text [`MODULE_TEMPLATE`] renders for `spec`.
fn render_module_code(spec: &NodeSpec) -> Result<String, Error> {
    let renderer = Renderer::modules()?;
    let context = tera::Context::from_serialize(spec).map_err(|e| Error::Template {
        template: MODULE_TEMPLATE.to_owned(),
        contract: spec.contract_file.clone().into(),
        message: error_chain(&e),
    })?;
    renderer.render_text(MODULE_TEMPLATE, &context, Path::new(&spec.contract_file))
}

/// Tera's error and its causes, joined.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

fn as_text<'v>(value: &'v tera::Value, filter: &str) -> tera::Result<std::borrow::Cow<'v, str>> {
    match value {
        tera::Value::String(s) => Ok(s.as_str().into()),
        tera::Value::Number(n) => Ok(n.to_string().into()),
        tera::Value::Bool(b) => Ok(b.to_string().into()),
        other => Err(tera::Error::msg(format!(
            "the `{filter}` filter takes text, not {other}"
        ))),
    }
}

fn doc_filter(
    value: &tera::Value,
    args: &HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let indent = match args.get("indent").map(|value| (value, value.as_u64())) {
        None => 0,
        Some((_, Some(spaces))) if spaces <= 64 => spaces as usize,
        Some((other, _)) => {
            return Err(tera::Error::msg(format!(
                "the `doc` filter's `indent` is a number of spaces up to 64, not {other}"
            )));
        }
    };
    let comments = escape::doc_comments(&as_text(value, "doc")?, indent);
    // `inner=true`: the crate's or module's own docs (`//!`). Each line
    // starts with `///`, after the indent, and holds no other line break.
    Ok(match args.get("inner").and_then(tera::Value::as_bool) {
        Some(true) => comments
            .split('\n')
            .map(|line| line.replacen("///", "//!", 1))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => comments,
    }
    .into())
}

/// A filter that escapes text with `escape`.
fn text_filter(name: &'static str, escape: fn(&str) -> String) -> impl tera::Filter + 'static {
    move |value: &tera::Value, _: &HashMap<String, tera::Value>| -> tera::Result<tera::Value> {
        Ok(escape(&as_text(value, name)?).into())
    }
}

fn lit_filter(value: &tera::Value, _: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    Ok(escape::string_literal(&as_text(value, "lit")?).into())
}

fn ident_filter(
    value: &tera::Value,
    _: &HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let text = as_text(value, "ident")?;
    // The one naming rule the gates also apply: a keyword becomes a raw
    // identifier (`r#type`), what cannot be an identifier fails the render.
    match crate::naming::rust_ident(&text) {
        Ok(ident) => Ok(tera::Value::String(ident.into_owned())),
        Err(e) => Err(tera::Error::msg(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{contract::load_str, spec};

    /// A contract that validation would reject, rendered anyway: even
    /// strings that are meant to be identifiers-like (actions, event types,
    /// topics, versions, the health endpoint) must end up as literals or
    /// docs, never as code.
    const UNVALIDATED: &str = r##"
contract_version: 1
node:
  name: sneaky
  node_type: effect
  version: "1.0.0\"; fn evil_version() {} //"
  domain: "d\"); fn evil_domain() {} (\""
  description: "*/ #[doc = \"x\"] fn evil_doc() {} /* \"# r#\"\n```\nfn evil_block() {}\n```"
  tags: ["\"]; fn evil_tag() {} //"]
capabilities:
  protocols: ["\u202e\"; fn evil_protocol() {} //"]
  health_endpoint: "/health\"); fn evil_health() { (\""
  actions: ["act\"; fn evil_action() {} //"]
types:
  - name: Payload
    fields:
      - name: value
        type: string
events:
  - name: happened
    event_type: "x.\"; fn evil_event_type() {} //"
    version: "1.0\"#; fn evil_event_version() {} //"
    fields:
      - name: payload
        type: Payload
subscriptions:
  - topic: "t.\"; fn evil_topic() {} //.v1"
    description: "*/ fn evil_subscription() {}"
states:
  initial: idle
  states: [idle, busy]
  transitions:
    - { from: idle, to: busy, on: "\"); fn evil_trigger() {} (\"" }
"##;

    fn names(items: &[syn::Item], out: &mut Vec<String>) {
        for item in items {
            match item {
                syn::Item::Fn(f) => out.push(f.sig.ident.to_string()),
                syn::Item::Struct(s) => out.push(s.ident.to_string()),
                syn::Item::Enum(e) => out.push(e.ident.to_string()),
                syn::Item::Const(c) => out.push(c.ident.to_string()),
                syn::Item::Mod(m) => {
                    out.push(m.ident.to_string());
                    if let Some((_, inner)) = &m.content {
                        names(inner, out);
                    }
                }
                syn::Item::Impl(i) => {
                    for item in &i.items {
                        match item {
                            syn::ImplItem::Fn(f) => out.push(f.sig.ident.to_string()),
                            syn::ImplItem::Const(c) => out.push(c.ident.to_string()),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }

    #[test]
    fn hostile_strings_stay_literals_and_docs() {
        let loaded = load_str(Path::new("sneaky.yaml"), UNVALIDATED.to_owned()).expect("loads");
        let spec = spec::build(&loaded, &Default::default()).expect("builds");
        let code = super::render_module(&spec).expect("renders");
        let file = syn::parse_file(&code).expect("the output parses");
        let mut found = Vec::new();
        names(&file.items, &mut found);
        let evil: Vec<&String> = found.iter().filter(|n| n.contains("evil")).collect();
        assert!(evil.is_empty(), "injected items: {evil:?}\n{code}");
        // Every doc attribute is a plain string, and the values survive.
        assert!(code.contains(r#"pub const VERSION: &str = "1.0.0\"; fn evil_version() {} //";"#));
        assert!(code.contains(
            r#"pub const PROTOCOLS: &[&str] = &["\u{202e}\"; fn evil_protocol() {} //"];"#
        ));
        // The event type reaches `impl_event!` as one string literal.
        assert!(code.contains(r#", "x.\"; fn evil_event_type() {} //","#));
        assert!(
            !code.contains('\u{202e}'),
            "bidi overrides are escaped or dropped"
        );
    }

    /// The `doc` filter ends without a line break, so whatever followed it
    /// on its template line would land inside the last doc comment.
    #[test]
    fn every_doc_comment_ends_its_template_line() {
        for (name, source) in onex_templates::ALL {
            for (number, line) in source.lines().enumerate() {
                let end = if line.contains("{% filter doc") {
                    line.rfind("{% endfilter %}")
                        .map(|at| at + "{% endfilter %}".len())
                } else if let Some(at) = line.find("| doc") {
                    line[at..].find("}}").map(|close| at + close + 2)
                } else {
                    continue;
                };
                assert!(
                    end.is_some_and(|end| line[end..].trim().is_empty()),
                    "{name}, line {}: put nothing after a doc comment: {line}",
                    number + 1
                );
            }
        }
    }

    #[test]
    fn invalid_rust_names_the_template_and_the_contract() {
        let err = super::format_rust("pub struct {", "module/module.rs.tera", Path::new("c.yaml"))
            .expect_err("does not parse");
        let text = err.to_string();
        assert!(text.contains("module/module.rs.tera"), "{text}");
        assert!(text.contains("c.yaml"), "{text}");
        assert!(text.contains("line 1"), "{text}");
    }
}
