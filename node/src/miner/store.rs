//! Slot results kept on disk between computing and revealing, so that a restarted miner
//! commits what it computed (once) and can still reveal it: the salt exists nowhere else.
//! Beside them, the input each stage computed on, signed by its sender, kept until the
//! task ends: a referee may ask for it, and a restarted miner that lost it would be
//! blamed for withholding it.

use super::protocol::SignedMessage;
use codec::{Decode, Encode};
use dllm_primitives::market::{ChunkIndex, TaskId};
use pallet_poaw::{PipelineIndex, RevealedOutput};
use polkadot_sdk::sp_core::H256;
use std::{
	fs,
	io::Write,
	path::{Path, PathBuf},
};

/// A slot's attested result.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SlotResult {
	/// The task.
	pub task: TaskId,
	/// The pipeline.
	pub pipeline: PipelineIndex,
	/// The chunk.
	pub chunk: ChunkIndex,
	/// The chunk's activation fingerprint (encoded).
	pub fingerprint: Vec<u8>,
	/// What the reveal carries as the output.
	pub output: RevealedOutput,
	/// What the commit publishes (the generator's last chunk under prefill
	/// verification: `commit_output`).
	pub publish: Option<RevealedOutput>,
	/// What the commitment binds as the output: the pipeline's output hash, or a
	/// verifier's verdict on it.
	pub output_hash: H256,
	/// The commitment's secret.
	pub salt: [u8; 32],
	/// What is committed on chain.
	pub commitment: H256,
}

/// A slot of a task: which pipeline, which chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotKey {
	/// The task.
	pub task: TaskId,
	/// The pipeline (0: the generator's; under prefill verification 1: the verifier's,
	/// then the referees').
	pub pipeline: PipelineIndex,
	/// The chunk.
	pub chunk: ChunkIndex,
}

impl std::fmt::Display for SlotKey {
	fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
		write!(f, "task {} pipeline {} chunk {}", self.task, self.pipeline, self.chunk)
	}
}

impl SlotKey {
	/// The slot `assignment` is about.
	pub fn of(assignment: &super::chain::Assignment) -> Self {
		SlotKey { task: assignment.task, pipeline: assignment.pipeline, chunk: assignment.chunk }
	}
}

impl SlotResult {
	pub fn key(&self) -> SlotKey {
		SlotKey { task: self.task, pipeline: self.pipeline, chunk: self.chunk }
	}
}

/// Why the store could not keep or give back a file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
	/// The directory could not be created.
	#[error("cannot create the miner's directory {}: {source}", path.display())]
	Create {
		/// The directory.
		path: PathBuf,
		/// The OS error.
		source: std::io::Error,
	},
	/// A file could not be written durably.
	#[error("cannot write {}: {source}", path.display())]
	Write {
		/// The file.
		path: PathBuf,
		/// The OS error.
		source: std::io::Error,
	},
	/// A file could not be read.
	#[error("cannot read {}: {source}", path.display())]
	Read {
		/// The file.
		path: PathBuf,
		/// The OS error.
		source: std::io::Error,
	},
	/// A file does not decode.
	#[error("{} is corrupt: {source}", path.display())]
	Corrupt {
		/// The file.
		path: PathBuf,
		/// The decoding error.
		source: codec::Error,
	},
}

/// A directory of [`SlotResult`]s, one file per slot.
#[derive(Clone)]
pub struct ResultStore {
	dir: PathBuf,
}

impl ResultStore {
	/// Opens (creating) `dir`, removing the partial files a crash mid-write left.
	pub fn open(dir: &Path) -> Result<Self, StoreError> {
		fs::create_dir_all(dir)
			.map_err(|source| StoreError::Create { path: dir.to_path_buf(), source })?;
		if let Ok(entries) = fs::read_dir(dir) {
			for entry in entries.flatten() {
				if entry.path().extension().is_some_and(|ext| ext == "partial") {
					let _ = fs::remove_file(entry.path());
				}
			}
		}
		Ok(ResultStore { dir: dir.to_path_buf() })
	}

	fn path(&self, SlotKey { task, pipeline, chunk }: SlotKey) -> PathBuf {
		self.dir.join(format!("slot-{task}-{pipeline}-{chunk}.scale"))
	}

	/// The directory (for [`save_input`] on the blocking pool).
	pub fn dir(&self) -> &Path {
		&self.dir
	}

	/// Writes `result` durably: the bytes go to a partial file that is flushed to disk
	/// before it is renamed over the slot's file, and the rename is flushed with the
	/// directory, so that a crash or a power loss leaves the old file or the new one,
	/// never an empty one (L1 of the 2026-12 review: the salt exists nowhere else).
	pub fn save(&self, result: &SlotResult) -> Result<(), StoreError> {
		write_durably(&self.dir, &self.path(result.key()), &result.encode())
	}

	/// The input kept for `key`'s stage, if any. A file that does not decode is an error.
	pub fn load_input(&self, key: SlotKey) -> Result<Option<Vec<SignedMessage>>, StoreError> {
		read_decoded(&input_path(&self.dir, key))
	}

	/// Every slot whose input is kept.
	pub fn input_keys(&self) -> Vec<SlotKey> {
		keys_with_prefix(&self.dir, "input-")
	}

	/// Forgets `key`'s input (its task ended).
	pub fn remove_input(&self, key: SlotKey) {
		let _ = fs::remove_file(input_path(&self.dir, key));
	}

	/// The result kept for `key`, if any. A file that does not decode is an error.
	pub fn load(&self, key: SlotKey) -> Result<Option<SlotResult>, StoreError> {
		read_decoded(&self.path(key))
	}

	/// Every kept result's slot.
	pub fn keys(&self) -> Vec<SlotKey> {
		keys_with_prefix(&self.dir, "slot-")
	}

	/// Forgets `key`'s result (revealed, or the slot closed).
	pub fn remove(&self, key: SlotKey) {
		let _ = fs::remove_file(self.path(key));
	}
}

fn input_path(dir: &Path, SlotKey { task, pipeline, chunk }: SlotKey) -> PathBuf {
	dir.join(format!("input-{task}-{pipeline}-{chunk}.scale"))
}

/// Writes the input `key`'s stage computed on into the store at `dir`, durably (blocking:
/// a long prompt's input is megabytes).
pub fn save_input(
	dir: &Path,
	key: SlotKey,
	messages: &[std::sync::Arc<SignedMessage>],
) -> Result<(), StoreError> {
	write_durably(dir, &input_path(dir, key), &messages.encode())
}

/// Writes `bytes` to `path` in `dir` so that a crash or a power loss leaves the old file
/// or the new one, never a partial one: a flushed partial file renamed over `path`, the
/// rename flushed with the directory.
fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
	let partial = path.with_extension("partial");
	let write = || -> std::io::Result<()> {
		let mut file = fs::File::create(&partial)?;
		file.write_all(bytes)?;
		file.sync_all()?;
		drop(file);
		fs::rename(&partial, path)?;
		sync_dir(dir)
	};
	write().map_err(|source| StoreError::Write { path: path.to_path_buf(), source })
}

/// The decoded content of `path`, `None` when it does not exist.
fn read_decoded<T: Decode>(path: &Path) -> Result<Option<T>, StoreError> {
	match fs::read(path) {
		Ok(bytes) => T::decode(&mut &bytes[..])
			.map(Some)
			.map_err(|source| StoreError::Corrupt { path: path.to_path_buf(), source }),
		Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
		Err(source) => Err(StoreError::Read { path: path.to_path_buf(), source }),
	}
}

/// The slots of the `<prefix><task>-<pipeline>-<chunk>.scale` files in `dir`.
fn keys_with_prefix(dir: &Path, prefix: &str) -> Vec<SlotKey> {
	let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
	entries
		.filter_map(|entry| entry.ok()?.file_name().into_string().ok())
		.filter_map(|name| {
			let inner = name.strip_prefix(prefix)?.strip_suffix(".scale")?;
			let mut parts = inner.split('-');
			let key = SlotKey {
				task: parts.next()?.parse().ok()?,
				pipeline: parts.next()?.parse().ok()?,
				chunk: parts.next()?.parse().ok()?,
			};
			parts.next().is_none().then_some(key)
		})
		.collect()
}

/// Flushes `dir`'s entries (a rename is durable only once its directory is).
#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
	fs::File::open(dir)?.sync_all()
}

/// Other systems make a rename durable without a directory handle.
#[cfg(not(unix))]
fn sync_dir(_: &Path) -> std::io::Result<()> {
	Ok(())
}

#[cfg(test)]
mod tests {
	use super::*;

	fn key(task: TaskId, pipeline: PipelineIndex, chunk: ChunkIndex) -> SlotKey {
		SlotKey { task, pipeline, chunk }
	}

	#[test]
	fn results_survive_a_restart_and_corruption_is_reported() {
		let dir = std::env::temp_dir().join(format!("dllm-store-{}", std::process::id()));
		let _ = fs::remove_dir_all(&dir);
		let result = SlotResult {
			task: 3,
			pipeline: 1,
			chunk: 0,
			fingerprint: vec![1, 2, 3],
			output: RevealedOutput::Hash(H256::repeat_byte(7)),
			publish: Some(RevealedOutput::Full {
				prompt_tokens: 4,
				tokens: vec![5, 6],
				text: b"hi".to_vec(),
			}),
			output_hash: H256::repeat_byte(7),
			salt: [9; 32],
			commitment: H256::repeat_byte(1),
		};
		{
			let store = ResultStore::open(&dir).unwrap();
			store.save(&result).unwrap();
		}
		let store = ResultStore::open(&dir).unwrap();
		assert_eq!(store.keys(), vec![key(3, 1, 0)]);
		assert_eq!(store.load(key(3, 1, 0)).unwrap(), Some(result));
		assert_eq!(store.load(key(4, 0, 0)).unwrap(), None);
		fs::write(dir.join("slot-5-0-0.scale"), [1, 2]).unwrap();
		assert!(matches!(store.load(key(5, 0, 0)), Err(StoreError::Corrupt { .. })));
		fs::write(dir.join("unrelated.txt"), b"x").unwrap();
		store.remove(key(3, 1, 0));
		store.remove(key(5, 0, 0));
		assert!(store.keys().is_empty());
		let _ = fs::remove_dir_all(&dir);
	}

	#[test]
	fn a_stages_input_survives_a_restart_beside_the_results() {
		let dir = std::env::temp_dir().join(format!("dllm-store-input-{}", std::process::id()));
		let _ = fs::remove_dir_all(&dir);
		let messages = vec![
			SignedMessage { index: 0, message: vec![1; 300], signature: [2; 64] },
			SignedMessage { index: 1, message: vec![3; 10], signature: [4; 64] },
		];
		{
			let store = ResultStore::open(&dir).unwrap();
			let shared: Vec<_> = messages.iter().cloned().map(std::sync::Arc::new).collect();
			save_input(store.dir(), key(6, 1, 1), &shared).unwrap();
		}
		let store = ResultStore::open(&dir).unwrap();
		assert_eq!(store.input_keys(), vec![key(6, 1, 1)]);
		assert!(store.keys().is_empty(), "inputs are not slot results");
		assert_eq!(store.load_input(key(6, 1, 1)).unwrap(), Some(messages));
		assert_eq!(store.load_input(key(6, 0, 1)).unwrap(), None);
		fs::write(dir.join("input-7-0-1.scale"), [9]).unwrap();
		assert!(matches!(store.load_input(key(7, 0, 1)), Err(StoreError::Corrupt { .. })));
		store.remove_input(key(6, 1, 1));
		store.remove_input(key(7, 0, 1));
		assert!(store.input_keys().is_empty());
		let _ = fs::remove_dir_all(&dir);
	}

	#[test]
	fn a_crash_mid_write_leaves_the_previous_result_and_a_failed_write_says_where() {
		let dir = std::env::temp_dir().join(format!("dllm-store-crash-{}", std::process::id()));
		let _ = fs::remove_dir_all(&dir);
		let store = ResultStore::open(&dir).unwrap();
		let mut result = SlotResult {
			task: 8,
			pipeline: 0,
			chunk: 1,
			fingerprint: vec![4; 40],
			output: RevealedOutput::Verdict { accepted: true },
			publish: None,
			output_hash: H256::repeat_byte(2),
			salt: [3; 32],
			commitment: H256::repeat_byte(4),
		};
		store.save(&result).unwrap();
		// A crash while the next version was written: an empty partial file is left.
		let partial = dir.join("slot-8-0-1.partial");
		fs::write(&partial, []).unwrap();
		assert_eq!(store.keys(), vec![key(8, 0, 1)]);
		assert_eq!(store.load(key(8, 0, 1)).unwrap().as_ref(), Some(&result));
		// Reopening the store (a restart) clears it; so does the next save.
		ResultStore::open(&dir).unwrap();
		assert!(!partial.exists());
		fs::write(&partial, []).unwrap();
		result.salt = [5; 32];
		store.save(&result).unwrap();
		assert!(!partial.exists());
		assert_eq!(store.load(key(8, 0, 1)).unwrap(), Some(result.clone()));
		fs::remove_dir_all(&dir).unwrap();
		let error = store.save(&result).unwrap_err();
		assert!(
			matches!(&error, StoreError::Write { path, .. } if path.ends_with("slot-8-0-1.scale")),
			"{error}"
		);
		assert!(error.to_string().starts_with("cannot write "), "{error}");
	}
}
