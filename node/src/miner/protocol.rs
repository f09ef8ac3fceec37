//! The miners' request-response protocol: activations travel down a pipeline, sampled
//! tokens come back up.
//!
//! A stage that receives [`StageRequest::Activations`] runs its chunk on the message
//! (the inference crate's wire format), forwards the result to the next chunk's miner
//! and answers with the token the last chunk sampled; so every miner of the pipeline
//! sees every generated token and can attest the pipeline's output.
//!
//! A verifier's or referee's pipeline recomputes a published generation by prefill:
//! [`StageRequest::Prefill`] carries one piece of prompt + generated positions down the
//! pipeline, and the answer comes once every later stage ran it.
//!
//! Every activation message is signed by its sender's miner key ([`hop_payload`]): the
//! receiver keeps what it received, so that in a dispute the referee of its chunk can
//! fetch it ([`StageRequest::Input`]) and tell a stage that computed wrongly from one
//! that was fed bad input (docs/protocol.md, "Blame follows the computation").

use codec::{Decode, Encode};
use dllm_primitives::market::{ChunkIndex, TaskId};
use pallet_poaw::PipelineIndex;
use polkadot_sdk::{
	sc_network::ProtocolName,
	sp_runtime::traits::{BlakeTwo256, Hash},
};
use std::time::Duration;

/// The protocol's name.
pub const PROTOCOL_NAME: &str = "/dllm/activations/2";

/// How long a requester waits for a reply. A reply waits for every later stage, so this
/// bounds a whole pipeline pass (a prefill of a long prompt through every chunk).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Replies are tokens, short errors, or a page of a stage's received input.
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// A sender's sr25519 signature of an activation message.
pub type Signature = [u8; 64];

/// What the sender of message `index` (a generation step or a prefill piece) of the
/// stream into `chunk` of `task`'s `pipeline` signs.
pub fn hop_payload(
	task: TaskId,
	pipeline: PipelineIndex,
	chunk: ChunkIndex,
	index: u32,
	message: &[u8],
) -> Vec<u8> {
	(b"dllm-hop", task, pipeline, chunk, index, BlakeTwo256::hash(message)).encode()
}

/// One activation message a stage received, with its sender's signature.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SignedMessage {
	/// The generation step or prefill piece.
	pub index: u32,
	/// The encoded `dllm_inference::wire::ActivationMessage`.
	pub message: Vec<u8>,
	/// The sender's signature of [`hop_payload`].
	pub signature: Signature,
}

/// Bytes of a request's own fields around the activation message.
const REQUEST_OVERHEAD: u64 = 1024;

/// The largest request a miner accepts for a model: a prefill of its whole context in
/// f32 hidden states, plus the wire header.
pub fn max_request_bytes(max_positions: usize, hidden_size: usize) -> u64 {
	(max_positions as u64)
		.saturating_mul(hidden_size as u64)
		.saturating_mul(4)
		.saturating_add(REQUEST_OVERHEAD)
}

/// The largest reply a miner accepts: a page of received input holds at least one
/// message, which is at most a request's size.
pub fn max_response_bytes(max_positions: usize, hidden_size: usize) -> u64 {
	max_request_bytes(max_positions, hidden_size)
		.saturating_add(REQUEST_OVERHEAD)
		.max(MAX_RESPONSE_BYTES)
}

/// The protocol's name as sc-network takes it.
pub fn protocol_name() -> ProtocolName {
	ProtocolName::from(PROTOCOL_NAME)
}

/// What one miner asks the next one in its pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum StageRequest {
	/// Run `message` through your chunk of `task`'s `pipeline` (generation step `step`:
	/// 0 is the prompt) and reply with the next token.
	Activations {
		/// The task.
		task: TaskId,
		/// Its pipeline.
		pipeline: PipelineIndex,
		/// The receiver's chunk.
		chunk: ChunkIndex,
		/// Generation step.
		step: u32,
		/// An encoded `dllm_inference::wire::ActivationMessage`.
		message: Vec<u8>,
		/// The sender's signature of [`hop_payload`] with `step`.
		signature: Signature,
	},
	/// The pipeline stopped early (a later stage failed): free the session.
	Abort {
		/// The task.
		task: TaskId,
		/// Its pipeline.
		pipeline: PipelineIndex,
		/// The receiver's chunk.
		chunk: ChunkIndex,
	},
	/// Run `message` (one piece of the prompt and generated positions, in order from
	/// piece 0) through your chunk of `task`'s verifier or referee `pipeline`, pass the
	/// result on, and reply once the rest of the pipeline ran it.
	Prefill {
		/// The task.
		task: TaskId,
		/// Its pipeline.
		pipeline: PipelineIndex,
		/// The receiver's chunk.
		chunk: ChunkIndex,
		/// The piece's index.
		piece: u32,
		/// An encoded `dllm_inference::wire::ActivationMessage`.
		message: Vec<u8>,
		/// The sender's signature of [`hop_payload`] with `piece`.
		signature: Signature,
	},
	/// The disputed chunk's referee asks for what the receiver's slot received, from
	/// message `from` on.
	Input {
		/// The task.
		task: TaskId,
		/// The receiver's pipeline.
		pipeline: PipelineIndex,
		/// The receiver's chunk.
		chunk: ChunkIndex,
		/// The first message wanted.
		from: u32,
	},
	/// The receiver replaces a stage that died mid-generation: run step `step` as the
	/// dead stage did (on the message its upstream sent it then) to rebuild your cache,
	/// and pass nothing on (the later stages ran it already); `token` is what the
	/// pipeline sampled at that step. Replies with that token. (Last, so that the
	/// variants before it keep their encoding.)
	Replay {
		/// The task.
		task: TaskId,
		/// Its pipeline.
		pipeline: PipelineIndex,
		/// The receiver's chunk.
		chunk: ChunkIndex,
		/// Generation step.
		step: u32,
		/// An encoded `dllm_inference::wire::ActivationMessage`.
		message: Vec<u8>,
		/// The sender's signature of [`hop_payload`] with `step`.
		signature: Signature,
		/// The token sampled at `step`.
		token: u32,
	},
}

/// Why a stage did not run a request. The reasons are UTF-8 text (SCALE encodes a
/// `String` as the byte vector that carried them in earlier versions).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, thiserror::Error)]
pub enum Refusal {
	/// The receiver does not (yet) hold this slot on chain; the sender may retry after
	/// the next block.
	#[error("the receiver does not hold this slot")]
	NotAssigned,
	/// The sender is not the previous chunk's miner of this pipeline.
	#[error("the sender is not the previous chunk's miner")]
	WrongSender,
	/// The request does not fit the session (wrong step, malformed message).
	#[error("bad request: {0}")]
	BadRequest(String),
	/// A later stage failed.
	#[error("a later stage failed: {0}")]
	Downstream(String),
	/// The receiver's computation failed.
	#[error("the stage failed: {0}")]
	Failed(String),
	/// The receiver is still running this request (a retry came early); try again.
	#[error("the receiver is still running this request")]
	Busy,
	/// A later stage stopped answering and was claimed silent on chain: the step can go
	/// on once the chain replaces it. (Last, so that the variants before it keep their
	/// encoding.)
	#[error("a later stage went silent: {0}")]
	Silent(String),
}

/// A stage's answer.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum StageResponse {
	/// The token the last chunk sampled at this step.
	Token(u32),
	/// The session was freed.
	Aborted,
	/// Not run.
	Refused(Refusal),
	/// The prefill piece ran through this stage and every later one.
	Prefilled,
	/// Received messages from the one asked for, in order; `complete` when they reach
	/// the last one kept.
	Input {
		/// The messages.
		messages: Vec<SignedMessage>,
		/// Whether nothing follows.
		complete: bool,
	},
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn messages_round_trip_and_garbage_is_an_error() {
		let request = StageRequest::Activations {
			task: 7,
			pipeline: 1,
			chunk: 2,
			step: 3,
			message: vec![1, 2, 3],
			signature: [7; 64],
		};
		assert_eq!(StageRequest::decode(&mut &request.encode()[..]).unwrap(), request);
		let piece = StageRequest::Prefill {
			task: 7,
			pipeline: 2,
			chunk: 1,
			piece: 4,
			message: vec![9],
			signature: [1; 64],
		};
		assert_eq!(StageRequest::decode(&mut &piece.encode()[..]).unwrap(), piece);
		let replay = StageRequest::Replay {
			task: 7,
			pipeline: 0,
			chunk: 1,
			step: 2,
			message: vec![3],
			signature: [4; 64],
			token: 11,
		};
		assert_eq!(StageRequest::decode(&mut &replay.encode()[..]).unwrap(), replay);
		let ask = StageRequest::Input { task: 7, pipeline: 0, chunk: 1, from: 3 };
		assert_eq!(StageRequest::decode(&mut &ask.encode()[..]).unwrap(), ask);
		let page = StageResponse::Input {
			messages: vec![SignedMessage { index: 3, message: vec![1], signature: [2; 64] }],
			complete: true,
		};
		assert_eq!(StageResponse::decode(&mut &page.encode()[..]).unwrap(), page);
		// The signed payload binds every field.
		let signed = hop_payload(7, 0, 1, 3, &[1]);
		for other in [
			hop_payload(8, 0, 1, 3, &[1]),
			hop_payload(7, 1, 1, 3, &[1]),
			hop_payload(7, 0, 2, 3, &[1]),
			hop_payload(7, 0, 1, 4, &[1]),
			hop_payload(7, 0, 1, 3, &[2]),
		] {
			assert_ne!(signed, other);
		}
		assert_eq!(
			StageResponse::decode(&mut &StageResponse::Prefilled.encode()[..]).unwrap(),
			StageResponse::Prefilled
		);
		let response = StageResponse::Refused(Refusal::BadRequest("step".into()));
		assert_eq!(StageResponse::decode(&mut &response.encode()[..]).unwrap(), response);
		// A reason is encoded as the byte vector that carried it before it was a
		// `String`: peers of either version understand each other.
		assert_eq!(Refusal::Failed("why".into()).encode(), (4u8, b"why".to_vec()).encode());
		// Reasons that are not UTF-8 are refused whole, as a malformed reply.
		assert!(Refusal::decode(&mut &(4u8, vec![0xffu8, 0xfe]).encode()[..]).is_err());
		for garbage in [&[][..], &[9][..], &[0, 1][..]] {
			assert!(StageRequest::decode(&mut &garbage[..]).is_err());
		}
		assert_eq!(max_request_bytes(32_768, 4096), 32_768 * 4096 * 4 + 1024);
	}

	#[test]
	fn random_and_truncated_requests_decode_to_errors_never_panics() {
		use rand::{rngs::StdRng, Rng, SeedableRng};
		let mut rng = StdRng::seed_from_u64(7);
		let valid = StageRequest::Activations {
			task: 1,
			pipeline: 0,
			chunk: 1,
			step: 0,
			message: vec![5; 100],
			signature: [0; 64],
		}
		.encode();
		for cut in 0..valid.len() {
			assert!(StageRequest::decode(&mut &valid[..cut]).is_err(), "cut at {cut}");
		}
		for _ in 0..20_000 {
			let len = rng.gen_range(0..64);
			let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
			// Any outcome but a panic; a huge claimed length must not allocate it.
			let _ = StageRequest::decode(&mut &bytes[..]);
			let _ = StageResponse::decode(&mut &bytes[..]);
		}
	}
}
