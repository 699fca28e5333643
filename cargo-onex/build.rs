//! Compiles the generator's own contracts into typed event modules, as any
//! node's build script does: the pipeline's progress and outcome events
//! (`contracts/generation_pipeline.yaml`) and the registry of live nodes
//! (`contracts/node_registry.yaml`). The two files are links to the
//! repository's `contracts/`, so that the published crate carries them.

fn main() {
    onex_build::Builder::new()
        .contract("contracts/generation_pipeline.yaml")
        .contract("contracts/node_registry.yaml")
        // The registry starts empty.
        .type_attribute("node_registry.Registry", "#[derive(Default)]")
        .compile_or_exit();
}
