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
    spec::{self, EventSpec, NodeSpec, SpecOptions},
    validate::references,
};

/// A JSON document as the commands print it: pretty, ending with a line
/// break.
pub fn json_text(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// A node and the messages it exchanges with the nodes it consumes.
#[derive(Debug, Clone)]
pub struct Node {
    /// The node.
    pub spec: NodeSpec,
    /// The nodes its contract consumes (`consumes:`).
    pub consumed: Vec<NodeSpec>,
    /// Events of consumed nodes it receives: its `event:` subscriptions and
    /// the answers to the commands it sends; each with its node's name.
    pub receives: Vec<(String, EventSpec)>,
    /// Commands of consumed nodes it sends (requests and workflow steps
    /// another node performs); each with its node's name.
    pub sends: Vec<(String, EventSpec)>,
}

/// Loads, validates and builds the spec of each contract, in order; the
/// error is that of the first invalid contract. Consumed contracts are
/// looked for beside each contract, then in each folder of `contract_path`.
pub fn load_specs(
    contracts: &[PathBuf],
    contract_path: &[PathBuf],
) -> Result<Vec<NodeSpec>, PipelineError> {
    Ok(load_nodes(contracts, contract_path)?
        .into_iter()
        .map(|n| n.spec)
        .collect())
}

/// [`load_specs`], with what each node exchanges with the nodes it
/// consumes.
pub fn load_nodes(
    contracts: &[PathBuf],
    contract_path: &[PathBuf],
) -> Result<Vec<Node>, PipelineError> {
    contracts
        .iter()
        .map(|path| load_node(path, contract_path))
        .collect()
}

fn load_node(path: &Path, contract_path: &[PathBuf]) -> Result<Node, PipelineError> {
    let fail = |stage: Stage, error: StageError| PipelineError {
        stage,
        contract: path.to_path_buf(),
        error: Box::new(error),
    };
    let loaded = parse(path).map_err(|e| fail(Stage::Parse, e))?;
    pre_validate_with(&loaded, contract_path).map_err(|e| fail(Stage::PreValidate, e))?;
    let spec = spec::build(&loaded, &SpecOptions::default())
        .map_err(|e| fail(Stage::BuildContract, StageError::Contract(e)))?;
    let refs = references::resolve(&loaded, contract_path).map_err(|ds| {
        fail(
            Stage::BuildContract,
            StageError::Contract(crate::contract::Diagnostics(ds)),
        )
    })?;
    let mut receives: Vec<(String, EventSpec)> = refs
        .reactions
        .iter()
        .map(|r| (r.node.clone(), r.event.clone()))
        .collect();
    let mut sends = Vec::new();
    for exchange in refs.steps.iter().map(|(_, e)| e).chain(&refs.requests) {
        sends.push((exchange.node.clone(), exchange.command.clone()));
        receives.push((exchange.completed_node.clone(), exchange.completed.clone()));
        receives.push((exchange.failed_node.clone(), exchange.failed.clone()));
    }
    Ok(Node {
        spec,
        consumed: refs.consumed.into_iter().map(|c| c.spec).collect(),
        receives,
        sends,
    })
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
