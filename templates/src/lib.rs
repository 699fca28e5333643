//! The tera templates of cargo-onex, embedded with `include_str!` so that
//! every crate that renders them packages on its own.
//!
//! Templates are named by their path under this crate, e.g.
//! `module/module.rs.tera`. To add one, put the file under its folder and
//! add a line to [`ALL`].
#![deny(missing_docs)]

/// A template: its name (as tera knows it) and its source.
pub type Template = (&'static str, &'static str);

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../", $name)))),*]
    };
}

/// Every template, in a stable order.
pub const ALL: &[Template] = templates![
    // The module onex-build writes to OUT_DIR for one contract.
    "module/module.rs.tera",
    "module/macros.rs.tera",
    "module/constants.rs.tera",
    "module/types.rs.tera",
    "module/events.rs.tera",
    "module/state.rs.tera",
    "module/event_enum.rs.tera",
    "module/discovery.rs.tera",
    // The node crate `cargo onex generate` writes.
    "node/Cargo.toml.tera",
    "node/README.md.tera",
    "node/build.rs.tera",
    "node/compose.yaml.tera",
    "node/contract.yaml.tera",
    "node/env.template.tera",
    "node/handler.rs.tera",
    "node/lib.rs.tera",
    "node/lifecycle.rs.tera",
    "node/main.rs.tera",
];

/// The source of the template called `name`, if there is one.
pub fn get(name: &str) -> Option<&'static str> {
    ALL.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, source)| *source)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = super::ALL.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), super::ALL.len());
    }
}
