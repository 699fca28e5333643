// Compiles the pricing contract into a module in OUT_DIR. A crate of your own
// would keep its contracts beside it and write `.contracts("contracts")`.
// On an invalid contract the build stops with one report: which contract,
// where, what is wrong and how to fix it.
fn main() {
    onex_build::Builder::new()
        .contract("../../contracts/pricing.yaml")
        .compile_or_exit();
}
