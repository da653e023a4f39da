//! Compiles the gRPC API (proto/hydra/v1/hydra.proto) with a vendored
//! protoc, so a fresh machine needs no protoc install.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; the variable is read by
    // prost-build's protoc invocation below.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(out.join("hydra_descriptor.bin"))
        // Smaller buffers per call than tonic's (see `Codec` there).
        .codec_path("crate::daemon::grpc::Codec")
        .compile_protos(&["proto/hydra/v1/hydra.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/hydra/v1/hydra.proto");
    Ok(())
}
