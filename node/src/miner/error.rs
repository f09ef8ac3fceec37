//! Why the worker's own steps fail: a pipeline it drives, a check it opens, a result it
//! attests. What a peer is told travels as a [`Refusal`] instead.

use super::{chain::ChainError, compute::ComputeError, protocol::Refusal};
use dllm_primitives::market::TaskId;
use dllm_runtime::AccountId;

/// A failed step of the worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
	/// Reading the chain, or signing or submitting, failed.
	#[error(transparent)]
	Chain(#[from] ChainError),
	/// A stage of the pipeline (this one, or a later one) refused or failed.
	#[error(transparent)]
	Refused(#[from] Refusal),
	/// The task is not on chain (any more).
	#[error("task {0} is not on chain")]
	UnknownTask(TaskId),
	/// The task's generator published no output to check.
	#[error("task {0}: the generator published no output")]
	NoOutput(TaskId),
	/// The task's slots do not list this stage.
	#[error("task {0}: its slots do not list this stage")]
	NotInTask(TaskId),
	/// A generation session ended before its prompt ran.
	#[error("the session ran no prompt")]
	NoPrompt,
	/// A miner the pipeline names is not a registered expert.
	#[error("{0} is not a registered expert")]
	NotAnExpert(AccountId),
	/// An expert registered a peer id that does not parse.
	#[error("{expert}'s registered peer id is invalid: {reason}")]
	BadPeerId {
		/// The expert.
		expert: AccountId,
		/// Why it does not parse.
		reason: String,
	},
	/// A pass, a check or a session's setup failed.
	#[error(transparent)]
	Compute(#[from] ComputeError),
	/// Tokenizing, decoding or fingerprinting failed.
	#[error(transparent)]
	Inference(#[from] dllm_inference::InferenceError),
}
