//! Test-only misbehaviour for the end-to-end tests: a miner that distorts the
//! activations it outputs or sends, or pauses after each token so that a test can stop
//! a stage mid-generation.
//!
//! It exists only in a build with the cargo feature `test-hooks` (the repository's
//! scripts build with it, `scripts/env.sh`). Without it the flags are not in the CLI and
//! every hook below is the honest no-op, so an operator's node has no way to misbehave
//! by configuration.

use candle_core::Tensor;

/// The test-only flags of `dllm-node --miner`.
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone, clap::Args)]
pub struct TestHookArgs {
	/// Test only: distort every activation this miner outputs, as generator, verifier
	/// or referee (a dishonest miner).
	#[arg(long, requires = "miner")]
	pub miner_perturb_activations: bool,

	/// Test only: fingerprint honest activations but send distorted ones to the next
	/// stage (a dishonest upstream that frames its downstream).
	#[arg(long, requires = "miner", conflicts_with = "miner_perturb_activations")]
	pub miner_corrupt_sent: bool,

	/// Test only: wait this long after each token this miner's pipelines generate, so
	/// that a test can stop a stage mid-generation.
	#[arg(long, value_name = "MS", default_value_t = 0, requires = "miner")]
	pub miner_token_delay_ms: u64,
}

/// How a dishonest miner distorts its work.
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Perturb {
	/// Honest work.
	Honest,
	/// Every activation it outputs (and fingerprints) is wrong.
	Outputs,
	/// It fingerprints its honest hidden states but sends wrong ones to the next stage.
	Sent,
}

/// The misbehaviour a test asked of this miner; honest in a build without the feature.
#[derive(Debug, Clone, Copy)]
pub struct TestHooks {
	#[cfg(feature = "test-hooks")]
	perturb: Perturb,
	#[cfg(feature = "test-hooks")]
	token_delay: std::time::Duration,
}

impl TestHooks {
	/// The hooks the flags ask for.
	#[cfg(feature = "test-hooks")]
	pub fn from_args(args: &TestHookArgs) -> Self {
		let perturb = match (args.miner_perturb_activations, args.miner_corrupt_sent) {
			(true, _) => Perturb::Outputs,
			(_, true) => Perturb::Sent,
			_ => Perturb::Honest,
		};
		TestHooks {
			perturb,
			token_delay: std::time::Duration::from_millis(args.miner_token_delay_ms),
		}
	}

	/// A build without the feature: honest.
	#[cfg(not(feature = "test-hooks"))]
	pub fn honest() -> Self {
		TestHooks {}
	}

	/// A generation pass's hidden states: what the stage fingerprints and what it sends.
	pub fn generated(&self, hidden: Tensor) -> Result<(Tensor, Tensor), candle_core::Error> {
		#[cfg(feature = "test-hooks")]
		match self.perturb {
			Perturb::Honest => {}
			Perturb::Outputs => {
				let wrong = distort(&hidden)?;
				return Ok((wrong.clone(), wrong));
			}
			Perturb::Sent => return Ok((hidden.clone(), distort(&hidden)?)),
		}
		Ok((hidden.clone(), hidden))
	}

	/// A generation pass's last logits row, before it is fingerprinted and sampled.
	pub fn generated_logits(&self, _logits: &mut [f32]) {
		#[cfg(feature = "test-hooks")]
		if self.perturb == Perturb::Outputs {
			_logits.iter_mut().for_each(|logit| *logit = -*logit);
		}
	}

	/// A prefill check pass's hidden states and logits, before the stage absorbs them.
	pub fn checked(
		&self,
		_pass: &mut dllm_inference::shard::ShardPass,
	) -> Result<(), candle_core::Error> {
		#[cfg(feature = "test-hooks")]
		if self.perturb == Perturb::Outputs {
			_pass.hidden = distort(&_pass.hidden)?;
			if let Some(logits) = &_pass.logits {
				_pass.logits = Some(logits.neg()?);
			}
		}
		Ok(())
	}

	/// The hidden states a prefill check stage sends on.
	pub fn sent(&self, hidden: Tensor) -> Result<Tensor, candle_core::Error> {
		#[cfg(feature = "test-hooks")]
		if self.perturb == Perturb::Sent {
			return distort(&hidden);
		}
		Ok(hidden)
	}

	/// Called after each token a pipeline this miner drives generated.
	pub async fn after_token(&self) {
		#[cfg(feature = "test-hooks")]
		if !self.token_delay.is_zero() {
			tokio::time::sleep(self.token_delay).await;
		}
	}
}

/// A dishonest miner's wrong activations.
#[cfg(feature = "test-hooks")]
fn distort(hidden: &Tensor) -> Result<Tensor, candle_core::Error> {
	hidden.affine(-2.0, 0.5)
}
