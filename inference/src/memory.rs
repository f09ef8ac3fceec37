//! How the process's allocator treats the memory of freed tensors.
//!
//! Every candle op allocates its output, and prefill's outputs are megabytes. glibc's
//! malloc serves blocks that large with `mmap` and gives them back to the kernel as soon
//! as they are freed, so the next op's output is fresh pages, each one a page fault and a
//! zeroing. On the mid model that cost 20–30% of prefill (docs/benchmarks.md: 420 000
//! page faults against 199 000, of which the weights' loading takes 170 000).

/// Largest block glibc may serve from its heaps (its own ceiling, 32 MiB on 64-bit):
/// bigger ones (weights, long KV caches) still come from `mmap`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;

/// Free memory at the top of a heap kept before glibc trims it back to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 256 << 20;

/// Extra room a heap grows by at once, so that growing is rare.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD: libc::c_int = 64 << 20;

/// Makes freed tensor memory stay with the process for the next tensors. The main heap
/// keeps up to [`TRIM_THRESHOLD`] free; the heaps of other threads (rayon's workers, at
/// most 64 MiB each in glibc) are then never trimmed, so the process keeps its peak
/// working set. Worth it where inference runs on the CPU: `dllm-infer`, and `dllm-node`
/// mining on the CPU (not a GPU miner, not a validator). Returns whether the allocator
/// took every setting: only glibc's has them.
pub fn retain_freed_memory() -> bool {
	#[cfg(all(target_os = "linux", target_env = "gnu"))]
	{
		// SAFETY: mallopt only sets the allocator's parameters, under the allocator's own
		// lock; no memory is touched.
		let set = |parameter, value| unsafe { libc::mallopt(parameter, value) == 1 };
		// Each on its own: one refused (a 32-bit glibc caps the threshold) keeps the others.
		let mmap = set(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
		let trim = set(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
		let pad = set(libc::M_TOP_PAD, TOP_PAD);
		mmap && trim && pad
	}
	#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
	{
		false
	}
}

#[cfg(test)]
mod tests {
	#[test]
	#[cfg(all(target_os = "linux", target_env = "gnu"))]
	fn glibc_takes_the_settings() {
		assert!(super::retain_freed_memory());
	}
}
