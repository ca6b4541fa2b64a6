//! Generates the gRPC code from `proto/devices.proto` (feature `grpc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(feature = "grpc")]
    {
        println!("cargo:rerun-if-changed=../proto/devices.proto");
        let mut config = tonic_prost_build::Config::new();
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .compile_with_config(config, &["../proto/devices.proto"], &["../proto"])?;
    }
    Ok(())
}
