//! Compiles the protos with protox (no system `protoc`) and writes the
//! descriptor set, with the google imports and the `google.api.http`
//! options intact, that the JSON transcoder, OpenAPI and reflection read.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds the migrations; without this a new migration
    // file doesn't rebuild the binary that carries them.
    println!("cargo:rerun-if-changed=migrations");
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler
        .include_imports(true)
        .include_source_info(true)
        .open_files(["practice/v1/practice.proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // encode_file_descriptor_set keeps extension options (google.api.http),
    // which prost_types' FileDescriptorSet would drop.
    std::fs::write(
        out.join("practice_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
