//! Errors of the inference engine. Every failure on input (files, configs, messages,
//! token ids) is one of these, with a message that says what to fix; nothing panics.

use std::path::PathBuf;

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, InferenceError>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
	/// A file could not be read or written.
	#[error("{path}: {source}")]
	Io {
		/// The file.
		path: PathBuf,
		/// The OS error.
		source: std::io::Error,
	},
	/// A file is missing from the model directory.
	#[error("missing file {0}")]
	MissingFile(PathBuf),
	/// config.json is malformed or inconsistent.
	#[error("config.json: {0}")]
	Config(String),
	/// The model is not a Mistral-architecture model this engine can run.
	#[error("unsupported model: {0}")]
	Unsupported(String),
	/// The weights do not match the config or are incomplete or corrupt.
	#[error("weights: {0}")]
	Weights(String),
	/// A layer range or list of ranges is invalid for the model.
	#[error("layer range: {0}")]
	LayerRange(String),
	/// An activation message is malformed or does not fit the shard.
	#[error("activation message: {0}")]
	Wire(String),
	/// Token ids or prompt length are out of bounds.
	#[error("input: {0}")]
	Input(String),
	/// A session's cache is missing, evicted or out of step.
	#[error("session: {0}")]
	Session(String),
	/// The tokenizer could not be loaded or used.
	#[error("tokenizer: {0}")]
	Tokenizer(String),
	/// Sampling parameters are invalid or the logits are unusable.
	#[error("sampling: {0}")]
	Sampling(String),
	/// A fingerprint is malformed.
	#[error("fingerprint: {0}")]
	Fingerprint(String),
	/// A generation record is malformed, or does not fit the model or the shards.
	#[error("record: {0}")]
	Record(String),
	/// The requested device is unknown or unavailable in this build.
	#[error("device: {0}")]
	Device(String),
	/// A tensor operation failed.
	#[error("tensor: {0}")]
	Candle(#[from] candle_core::Error),
}

impl InferenceError {
	/// Wraps an I/O error with the path it concerns.
	pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
		InferenceError::Io { path: path.into(), source }
	}

	/// The same error, its message prefixed with the file it was found in (errors that
	/// name no file; the others are returned as they are).
	pub fn in_file(self, path: &std::path::Path) -> Self {
		let located = |message: String| format!("{}: {message}", path.display());
		match self {
			InferenceError::Weights(message) => InferenceError::Weights(located(message)),
			InferenceError::Tokenizer(message) => InferenceError::Tokenizer(located(message)),
			other => other,
		}
	}
}
