//! The contract hash: a stable fingerprint of what a contract says, not of
//! how its file spells it.
//!
//! The canonical form is the parsed [`Contract`] as compact JSON with every
//! object's keys sorted (serde_json's map is ordered by key): comments,
//! key order, quoting and layout of the YAML do not change it, while any
//! change of a value, or of the order of a list (operations, steps,
//! fields), does. The hash is the first 16 hex digits of the canonical
//! form's SHA-256, so that any implementation can compute it again.

use sha2::{Digest, Sha256};

use super::Contract;

/// How many hex digits of the SHA-256 the hash keeps (64 bits).
const HEX_DIGITS: usize = 16;

/// The canonical form of a contract: sorted-key compact JSON.
pub fn canonical_form(contract: &Contract) -> String {
    // Through a `Value`, whose maps sort their keys; strings, numbers,
    // booleans and lists only: this always serializes.
    serde_json::to_value(contract)
        .map(|value| value.to_string())
        .unwrap_or_default()
}

/// The contract hash: 16 lower-case hex digits.
pub fn contract_hash(contract: &Contract) -> String {
    let digest = Sha256::digest(canonical_form(contract).as_bytes());
    let mut hex = String::with_capacity(HEX_DIGITS);
    for byte in &digest[..HEX_DIGITS / 2] {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::load_str;

    const CONTRACT: &str = "\
contract_version: 1
node:
  name: writer
  node_type: effect
  version: 1.0.0
  domain: database
operations:
  - name: write
    input: string
    output: string
";

    fn hash(text: &str) -> String {
        contract_hash(
            &load_str(std::path::Path::new("c.yaml"), text.to_owned())
                .expect("loads")
                .contract,
        )
    }

    #[test]
    fn comments_key_order_and_layout_do_not_change_it() {
        let reordered = "\
# The writer node.
node: {domain: database, version: \"1.0.0\", node_type: effect, name: writer}
operations:
  - output: string   # what it returns
    name: write
    input: string
contract_version: 1
";
        assert_eq!(hash(CONTRACT), hash(reordered));
        assert_eq!(hash(CONTRACT).len(), 16);
        assert!(hash(CONTRACT).chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn a_changed_value_changes_it() {
        let other = CONTRACT.replace("version: 1.0.0", "version: 1.0.1");
        assert_ne!(hash(CONTRACT), hash(&other));
        let other = CONTRACT.replace("output: string", "output: i64");
        assert_ne!(hash(CONTRACT), hash(&other));
    }
}
