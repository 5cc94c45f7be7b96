//! Compiles `proto/runnel.proto` (and `proto/group_log.proto`, the broker's offsets-log records) with protox (a protobuf compiler in Rust), so building
//! needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/runnel.proto");
    println!("cargo:rerun-if-changed=proto/group_log.proto");
    let descriptors = protox::compile(["proto/runnel.proto", "proto/group_log.proto"], ["proto"])?;
    prost_build::Config::new()
        // Map fields as BTreeMap: deterministic order in logs, tests and CLI output.
        .btree_map(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
