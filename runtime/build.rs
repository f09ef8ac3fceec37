//! Builds the wasm runtime that the node embeds and the chain specs carry.

#[cfg(feature = "std")]
fn main() {
	use std::path::{Path, PathBuf};

	// The wasm must not depend on where the checkout, cargo home or target directory
	// are, so that the committed chain specs (which embed it) match on every machine.
	let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
	let workspace = manifest_dir.parent().map(Path::to_path_buf).unwrap_or_default();
	let cargo_home = std::env::var("CARGO_HOME").map(PathBuf::from).unwrap_or_else(|_| {
		PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
	});
	// OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out.
	let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
	let target_dir = out_dir.ancestors().nth(4).map(Path::to_path_buf).unwrap_or_default();

	// With a target directory outside the checkout the builder cannot find Cargo.lock on
	// its own; without it the wasm would be built with unpinned dependency versions.
	if std::env::var_os("WASM_BUILD_WORKSPACE_HINT").is_none() {
		std::env::set_var("WASM_BUILD_WORKSPACE_HINT", &workspace);
	}
	let mut builder = substrate_wasm_builder::WasmBuilder::init_with_defaults();
	for (from, to) in [(&target_dir, "/target"), (&workspace, "/dllm"), (&cargo_home, "/cargo")] {
		if !from.as_os_str().is_empty() {
			builder = builder
				.append_to_rust_flags(format!("--remap-path-prefix={}={to}", from.display()));
		}
	}
	builder.build();
}

#[cfg(not(feature = "std"))]
fn main() {}
