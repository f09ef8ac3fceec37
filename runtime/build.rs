//! Builds the wasm runtime that the node embeds and the chain specs carry.
//!
//! The committed chain specs embed the wasm, so it must come out byte for byte the same
//! wherever the checkout lies. Remapping paths in panic messages is not enough: cargo
//! hashes a path dependency outside the building workspace by its absolute path, and
//! that hash seeds symbol names and type ids, which move code around in the wasm. So the
//! wasm is built from a fixed path, a symlink to this checkout (what srtool does with a
//! fixed `/build` directory), under a lock so two checkouts do not swap it mid-build.

#[cfg(all(feature = "std", unix))]
fn main() {
	use std::path::{Path, PathBuf};

	const FIXED_SOURCE: &str = "/tmp/dllm-wasm-source";

	let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
	let workspace = manifest_dir.parent().map(Path::to_path_buf).unwrap_or_default();
	let cargo_home = std::env::var("CARGO_HOME").map(PathBuf::from).unwrap_or_else(|_| {
		PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
	});
	// OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out.
	let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
	let target_dir = out_dir.ancestors().nth(4).map(Path::to_path_buf).unwrap_or_default();

	let lock = std::fs::File::create(format!("{FIXED_SOURCE}.lock"))
		.and_then(|file| file.lock().map(|()| file))
		.unwrap_or_else(|e| panic!("cannot lock {FIXED_SOURCE}.lock: {e}"));
	point_symlink_at(Path::new(FIXED_SOURCE), &workspace);
	let source = Path::new(FIXED_SOURCE);

	// With a target directory outside the checkout the builder cannot find Cargo.lock on
	// its own; without it the wasm would be built with unpinned dependency versions.
	if std::env::var_os("WASM_BUILD_WORKSPACE_HINT").is_none() {
		std::env::set_var("WASM_BUILD_WORKSPACE_HINT", source);
	}
	// The builder watches the files it compiles through the symlink, which may point at
	// another checkout later; watch the real files too.
	for watched in ["runtime", "pallets", "Cargo.toml", "Cargo.lock"] {
		println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
	}

	let mut builder = substrate_wasm_builder::WasmBuilder::new()
		.with_project(source.join("runtime/Cargo.toml"))
		.unwrap_or_else(|e| panic!("{e}: {}", source.join("runtime").display()))
		.import_memory()
		.export_heap_base();
	for (from, to) in [
		(target_dir.as_path(), "/target"),
		(source, "/dllm"),
		(workspace.as_path(), "/dllm"),
		(cargo_home.as_path(), "/cargo"),
	] {
		if !from.as_os_str().is_empty() {
			builder = builder
				.append_to_rust_flags(format!("--remap-path-prefix={}={to}", from.display()));
		}
	}
	builder.build();
	drop(lock);
}

/// Makes `link` a symlink to `target`, replacing whatever link was there atomically.
#[cfg(all(feature = "std", unix))]
fn point_symlink_at(link: &std::path::Path, target: &std::path::Path) {
	if std::fs::read_link(link).is_ok_and(|current| current == target) {
		return;
	}
	let staging = link.with_extension(format!("{}.tmp", std::process::id()));
	let _ = std::fs::remove_file(&staging);
	std::os::unix::fs::symlink(target, &staging)
		.and_then(|()| std::fs::rename(&staging, link))
		.unwrap_or_else(|e| panic!("cannot point {} at {}: {e}", link.display(), target.display()));
}

#[cfg(all(feature = "std", not(unix)))]
fn main() {
	substrate_wasm_builder::WasmBuilder::init_with_defaults().build();
}

#[cfg(not(feature = "std"))]
fn main() {}
