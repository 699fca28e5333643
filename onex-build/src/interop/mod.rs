//! Descriptions of a node's messages for other tools: a JSON Schema
//! (draft 2020-12) of every event payload ([`json_schema`]) and one
//! AsyncAPI 3.0 document for a set of nodes ([`asyncapi`]).
//!
//! Pure functions from [`NodeSpec`](crate::spec::NodeSpec)s to
//! `serde_json::Value`s; maps are `serde_json::Map`s, which keep their keys
//! sorted, so the output is the same on every run.

pub mod asyncapi;
pub mod json_schema;

use std::path::{Path, PathBuf};

use crate::{
    pipeline::{PipelineError, Stage, StageError, parse::parse, pre_validate::pre_validate_with},
    spec::{self, NodeSpec, SpecOptions},
};

/// Loads, validates and builds the spec of each contract, in order; the
/// error is that of the first invalid contract. Consumed contracts are
/// looked for beside each contract, then in each folder of `contract_path`.
pub fn load_specs(
    contracts: &[PathBuf],
    contract_path: &[PathBuf],
) -> Result<Vec<NodeSpec>, PipelineError> {
    contracts
        .iter()
        .map(|path| load_spec(path, contract_path))
        .collect()
}

fn load_spec(path: &Path, contract_path: &[PathBuf]) -> Result<NodeSpec, PipelineError> {
    let fail = |stage: Stage, error: StageError| PipelineError {
        stage,
        contract: path.to_path_buf(),
        error: Box::new(error),
    };
    let loaded = parse(path).map_err(|e| fail(Stage::Parse, e))?;
    pre_validate_with(&loaded, contract_path).map_err(|e| fail(Stage::PreValidate, e))?;
    spec::build(&loaded, &SpecOptions::default())
        .map_err(|e| fail(Stage::BuildContract, StageError::Contract(e)))
}

/// The JSON Schema of the contract format, derived from the serde model the
/// loader uses ([`crate::contract::Contract`]).
#[cfg(feature = "schema")]
pub fn contract_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(crate::contract::Contract).to_value();
    if let Some(m) = schema.as_object_mut() {
        m.insert(
            "title".into(),
            serde_json::Value::from("ONEX node contract, version 1"),
        );
    }
    schema
}
