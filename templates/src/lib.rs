//! The tera templates of cargo-onex, embedded with `include_str!` so that
//! every crate that renders them packages on its own.
//!
//! Templates are named by their path under this crate, e.g.
//! `module/module.rs.tera`. To add one, put the file under its folder and
//! add its name to that folder's list in the `template_sets!` call below.
#![deny(missing_docs)]

/// A template: its name (as tera knows it) and its source.
pub type Template = (&'static str, &'static str);

macro_rules! template_sets {
    (module: [$($module:literal),* $(,)?], node: [$($node:literal),* $(,)?] $(,)?) => {
        /// The templates of the module onex-build writes to `OUT_DIR` for one
        /// contract: all a build script needs.
        pub const MODULE: &[Template] = &[$(($module, include_str!(concat!("../", $module)))),*];

        /// The templates of the node crate `cargo onex generate` writes.
        pub const NODE: &[Template] = &[$(($node, include_str!(concat!("../", $node)))),*];

        /// Every template, in a stable order: [`MODULE`], then [`NODE`].
        pub const ALL: &[Template] = &[
            $(($module, include_str!(concat!("../", $module)))),*,
            $(($node, include_str!(concat!("../", $node)))),*
        ];
    };
}

template_sets! {
    module: [
        "module/module.rs.tera",
        "module/macros.rs.tera",
        "module/constants.rs.tera",
        "module/types.rs.tera",
        "module/events.rs.tera",
        "module/state.rs.tera",
        "module/event_enum.rs.tera",
        "module/discovery.rs.tera",
    ],
    node: [
        "node/Cargo.toml.tera",
        "node/README.md.tera",
        "node/build.rs.tera",
        "node/compose.yaml.tera",
        "node/consumed.yaml.tera",
        "node/contract.yaml.tera",
        "node/env.template.tera",
        "node/handler.rs.tera",
        "node/lib.rs.tera",
        "node/lifecycle.rs.tera",
        "node/main.rs.tera",
    ],
}

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

    #[test]
    fn sets_are_split_by_folder() {
        assert_eq!(super::ALL.len(), super::MODULE.len() + super::NODE.len());
        assert!(super::MODULE.iter().all(|(n, _)| n.starts_with("module/")));
        assert!(super::NODE.iter().all(|(n, _)| n.starts_with("node/")));
    }
}
