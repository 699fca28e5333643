//! Runs onex-build over the workspace's contracts (and the hostile test
//! contracts, when present) exactly as a user's build script would, then
//! writes `modules.rs`: one documented module per contract, plus the list of
//! the sources that were compiled. The real and this crate's hostile
//! contracts are compiled a second time unformatted (`format(false)`).

use std::{fmt::Write as _, path::Path};

fn main() {
    let out_dir = match std::env::var("OUT_DIR") {
        Ok(dir) => dir,
        Err(_) => {
            eprintln!("OUT_DIR is not set: run this through cargo");
            std::process::exit(1);
        }
    };
    let mut modules = String::new();
    let mut sources = String::new();
    // (module, folder, format): the real contracts, this crate's own
    // hostile contracts, and the shared hostile contracts when they exist;
    // then the first two again as the templates lay them out.
    let groups = [
        ("contracts", "../../contracts", true),
        ("hostile", "hostile", true),
        ("hostile_shared", "../hostile_contracts", true),
        ("contracts_unformatted", "../../contracts", false),
        ("hostile_unformatted", "hostile", false),
    ];
    for (group, folder, format) in groups {
        if !Path::new(folder).is_dir() {
            // Watching a missing path would rerun this script on every
            // build; watch the parent folder to see it appear.
            if let Some(parent) = Path::new(folder).parent() {
                println!("cargo:rerun-if-changed={}", parent.display());
            }
            continue;
        }
        let group_dir = Path::new(&out_dir).join(group);
        let mut builder = onex_build::Builder::new();
        builder.contracts(folder).out_dir(&group_dir).format(format);
        builder.compile_or_exit();
        let files = match builder.generate() {
            Ok(files) => files,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        let _ = writeln!(
            modules,
            "/// Modules generated from `{group}`.\npub mod {group} {{"
        );
        for file in &files {
            let name = &file.spec.name;
            let path = group_dir.join(&file.file_name);
            let path = path.display();
            let _ = writeln!(
                modules,
                "    /// The module generated for `{name}`.\n    pub mod {name} {{ include!({path:?}); }}"
            );
            let _ = writeln!(
                sources,
                "    ({group:?}, {name:?}, include_str!({path:?})),"
            );
        }
        modules.push_str("}\n");
    }
    let _ = writeln!(
        modules,
        "/// `(group, node name, source)` of every module compiled above.\n\
         pub const SOURCES: &[(&str, &str, &str)] = &[\n{sources}];"
    );
    if let Err(e) = std::fs::write(Path::new(&out_dir).join("modules.rs"), modules) {
        eprintln!("cannot write modules.rs: {e}");
        std::process::exit(1);
    }
}
