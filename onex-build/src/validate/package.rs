//! QC-005 (package names): the node name becomes the node crate's package
//! name (`postgres-writer`), its library name (`postgres_writer`), its
//! binary name and folder, and the name of the module file a build script
//! writes (`postgres_writer.rs`). Cargo refuses some of those names, some
//! would shadow a crate the generated code refers to by path, and all of
//! them end up in file names.

use super::Ctx;

/// The longest node name accepted, in bytes.
///
/// Cargo derives file names from the crate name: `lib{name}-{16 hex}.rlib`,
/// `target/debug/build/{name}-{16 hex}/`, `.d` files, and object files of
/// codegen units named `{name}-{hash}.{name}.{hash}-cgu.NN.rcgu.o`, which
/// carry the name twice. File systems allow 255 bytes per component; with
/// 64 the longest of these stays under 200. It is also crates.io's limit
/// for a package name, so a node crate can be published as it is named.
pub const MAX_NODE_NAME_LEN: usize = 64;

/// Names cargo refuses for a package, a library or a binary: the crates
/// of the Rust distribution, the folders of a target directory, and the
/// device names of Windows (a file `con.rs` cannot be created there).
const CARGO_RESERVED: &[(&str, &str)] = &[
    ("std", "a crate of the Rust distribution"),
    ("core", "a crate of the Rust distribution"),
    ("alloc", "a crate of the Rust distribution"),
    ("proc_macro", "a crate of the Rust distribution"),
    ("test", "a crate of the Rust distribution"),
    ("build", "a folder of cargo's target directory"),
    ("deps", "a folder of cargo's target directory"),
    ("examples", "a folder of cargo's target directory"),
    ("incremental", "a folder of cargo's target directory"),
    ("con", "a device name on Windows"),
    ("prn", "a device name on Windows"),
    ("aux", "a device name on Windows"),
    ("nul", "a device name on Windows"),
];

/// Crates the node crate depends on or its generated code names by path
/// (`::onex::...`, `onex_build::Builder` in `build.rs`): a node crate of
/// the same name would depend on itself or shadow them.
const DEPENDENCIES: &[&str] = &["onex", "onex_build", "onex_templates"];

/// Why `name` (a snake_case node name) cannot name a node crate, if it
/// cannot.
pub(crate) fn package_name_problem(name: &str) -> Option<String> {
    let lib = name.replace('-', "_");
    if lib.len() > MAX_NODE_NAME_LEN {
        return Some(format!(
            "{} characters: cargo puts the name (twice, in object files) into file names, which the file system limits to 255 bytes",
            lib.len()
        ));
    }
    if let Some((_, what)) = CARGO_RESERVED.iter().find(|(n, _)| *n == lib) {
        return Some(format!(
            "`{name}` is {what}; cargo refuses it as a package name"
        ));
    }
    let device = lib
        .strip_prefix("com")
        .or_else(|| lib.strip_prefix("lpt"))
        .is_some_and(|n| n.len() == 1 && n.as_bytes()[0].is_ascii_digit() && n != "0");
    if device {
        return Some(format!(
            "`{name}` is a device name on Windows; cargo refuses it as a package name"
        ));
    }
    if DEPENDENCIES.contains(&lib.as_str()) {
        return Some(format!(
            "`{name}` is the name of a crate the node crate depends on; the node crate would depend on itself"
        ));
    }
    None
}

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let name = ctx.contract.node.name.as_str();
    // Names that are not snake_case are QC-001's: the package name would
    // not even be derived from them.
    if !crate::naming::is_snake_case(name) {
        return;
    }
    let Some(problem) = package_name_problem(name) else {
        return;
    };
    let help = if name.len() > MAX_NODE_NAME_LEN {
        let mut short = name[..MAX_NODE_NAME_LEN].trim_end_matches('_').to_owned();
        if short.is_empty() {
            short = "node".to_owned();
        }
        format!(
            "shorten the node name to at most {MAX_NODE_NAME_LEN} characters, e.g. `{short}`; set `node.service` if topics need the long name"
        )
    } else {
        format!("rename the node, e.g. to `{name}_node`")
    };
    let d = ctx
        .error(
            "QC-005",
            "node.name",
            format!("the node name `{}` cannot name the node crate", shorten(name)),
        )
        .expected(format!(
            "a package name cargo accepts: at most {MAX_NODE_NAME_LEN} characters, not a reserved name (`std`, `test`, `build`, `con`, ...) and not `onex` or `onex_build`"
        ))
        .found(problem)
        .help(help);
    ctx.push(d);
}

/// A long name cut for a message; the diagnostic points at it anyway.
fn shorten(name: &str) -> String {
    if name.len() <= 80 {
        name.to_owned()
    } else {
        format!("{}...", &name[..77])
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn qc_005_package_names() {
        passes(BASE, "QC-005");
        for bad in [
            "test",
            "core",
            "std",
            "alloc",
            "proc_macro",
            "build",
            "deps",
            "examples",
            "incremental",
            "con",
            "prn",
            "aux",
            "nul",
            "com1",
            "com9",
            "lpt1",
            "lpt9",
            "onex",
            "onex_build",
            "onex_templates",
        ] {
            let ds = fails(
                &BASE.replace("name: writer", &format!("name: {bad}")),
                "QC-005",
            );
            assert!(
                ds.0[0].help.as_deref().is_some_and(|h| h.contains("_node")),
                "{ds}"
            );
        }
        for good in [
            "com10",
            "lpt0",
            "tests",
            "builder",
            "onex_writer",
            "console",
        ] {
            passes(
                &BASE.replace("name: writer", &format!("name: {good}")),
                "QC-005",
            );
        }
        let long = "a".repeat(MAX_NODE_NAME_LEN + 1);
        let ds = fails(
            &BASE.replace("name: writer", &format!("name: {long}")),
            "QC-005",
        );
        assert!(
            ds.0[0]
                .help
                .as_deref()
                .is_some_and(|h| h.contains("at most 64")),
            "{ds}"
        );
        passes(
            &BASE.replace("name: writer", &format!("name: {}", &long[1..])),
            "QC-005",
        );
    }
}
