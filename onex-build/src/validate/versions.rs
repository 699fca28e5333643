//! SV-001 (contract version) and SV-002 (versions).

use super::Ctx;

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let c = ctx.contract;
    if c.contract_version != 1 {
        let d = ctx
            .error(
                "SV-001",
                "contract_version",
                "unsupported contract format version",
            )
            .expected("`1`")
            .found(format!("`{}`", c.contract_version))
            .help("set `contract_version: 1`; this version of onex-build reads format version 1");
        ctx.push(d);
    }

    let version = &c.node.version;
    if let Err(e) = semver::Version::parse(version) {
        let d = ctx
            .error(
                "SV-002",
                "node.version",
                "the node version is not a semantic version",
            )
            .expected("MAJOR.MINOR.PATCH, e.g. `1.0.0`")
            .found(format!("`{version}` ({e})"))
            .help(match semver_fix(version) {
                Some(fixed) => format!("write `version: {fixed}`"),
                None => "write the version as three numbers, e.g. `version: 1.0.0`".to_owned(),
            });
        ctx.push(d);
    }

    for (i, event) in c.events.iter().enumerate() {
        let Some(version) = &event.version else {
            continue;
        };
        if !is_event_version(version) {
            let d = ctx
                .error("SV-002", format!("events[{i}].version"), "the event version is not valid")
                .expected("MAJOR.MINOR, e.g. `1.0`, or a semantic version")
                .found(format!("`{version}`"))
                .help("write the payload schema version as `1.0`, raising MINOR for compatible changes and MAJOR for breaking ones");
            ctx.push(d);
        }
    }
}

/// `1.0` or a semantic version.
fn is_event_version(v: &str) -> bool {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    matches!(v.split_once('.'), Some((a, b)) if numeric(a) && numeric(b))
        || semver::Version::parse(v).is_ok()
}

/// A likely intended semantic version: `v1.2.3` -> `1.2.3`, `1.2` -> `1.2.0`.
fn semver_fix(v: &str) -> Option<String> {
    let v = v.trim().trim_start_matches(['v', 'V']);
    let parts: Vec<&str> = v.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !numeric {
        return semver::Version::parse(v).ok().map(|x| x.to_string());
    }
    let fixed = match parts.as_slice() {
        [a] => format!("{a}.0.0"),
        [a, b] => format!("{a}.{b}.0"),
        [a, b, c] => format!("{a}.{b}.{c}"),
        _ => return None,
    };
    semver::Version::parse(&fixed).ok().map(|x| x.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn sv_001_contract_version() {
        passes(BASE, "SV-001");
        let ds = fails(
            &BASE.replace("contract_version: 1", "contract_version: 2"),
            "SV-001",
        );
        assert_eq!(ds.0[0].line, Some(1));
    }

    #[test]
    fn sv_002_versions() {
        passes(BASE, "SV-002");
        let ds = fails(&BASE.replace("version: 1.0.0", "version: v1.2"), "SV-002");
        assert_eq!(ds.0[0].help.as_deref(), Some("write `version: 1.2.0`"));
        passes(
            &BASE.replace(
                "  - name: written\n",
                "  - name: written\n    version: '2.1'\n",
            ),
            "SV-002",
        );
        fails(
            &BASE.replace(
                "  - name: written\n",
                "  - name: written\n    version: latest\n",
            ),
            "SV-002",
        );
    }
}
