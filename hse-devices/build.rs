//! Generates the gRPC code from `proto/devices.proto` (feature `grpc`),
//! and rebuilds the crate when a migration is added (`sqlx::migrate!`
//! embeds `migrations/` at compile time; cargo does not watch it on its own).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=migrations");
    #[cfg(feature = "grpc")]
    {
        println!("cargo:rerun-if-changed=../proto/devices.proto");
        let mut config = tonic_prost_build::Config::new();
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
        // The encoded descriptors, for servers that offer gRPC reflection.
        let descriptors =
            std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("devices_descriptor.bin");
        tonic_prost_build::configure()
            .file_descriptor_set_path(descriptors)
            .build_client(true)
            .build_server(true)
            .compile_with_config(config, &["../proto/devices.proto"], &["../proto"])?;
    }
    Ok(())
}
