//! Compiles proto/tei.proto (TEI's gRPC API) into the server's message types and service
//! traits; protox parses it in Rust, so the build needs no protoc.

fn main() {
    println!("cargo:rerun-if-changed=proto/tei.proto");
    let fds = match protox::compile(["proto/tei.proto"], ["proto"]) {
        Ok(fds) => fds,
        Err(e) => panic!("proto/tei.proto: {e}"),
    };
    // The client is for the load generator (benches/load.rs: gRPC against HTTP).
    if let Err(e) = tonic_prost_build::configure().compile_fds(fds) {
        panic!("generating the gRPC code of proto/tei.proto: {e}");
    }
}
