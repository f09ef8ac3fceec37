//! Benchmarks of the task pallet's calls and of its per-block work (assignment,
//! deadlines, result removal), each in its most expensive case.

use super::*;
use alloc::vec;
use polkadot_sdk::{
	frame_benchmarking::v2::*,
	frame_support::traits::fungible::Mutate,
	frame_system::{Pallet as System, RawOrigin},
	sp_runtime::traits::Bounded,
};

/// Longest chunking the benchmarks build; weights are linear beyond it.
const MAX_CHUNKS: u32 = 16;
/// Most offers per chunk the benchmarks build; weights are linear beyond it.
const MAX_OFFERS: u32 = 16;

fn requester<T: Config>() -> T::AccountId {
	let who: T::AccountId = account("requester", 0, 0);
	T::Currency::set_balance(&who, BalanceOf::<T>::max_value() / 4u32.into());
	who
}

/// A model of `chunks` chunks, each served by `servers` experts asking 10, 11, ….
fn market<T: Config>(chunks: u32, servers: u32) -> ModelId {
	let model = T::Models::register_for_benchmark(chunks);
	for chunk in 0..chunks {
		for i in 0..servers {
			let who: T::AccountId = account("miner", chunk * 1000 + i, 0);
			T::Experts::register_for_benchmark(&who, model, chunk, (10 + i).into());
		}
	}
	model
}

fn sampling() -> SamplingParams {
	SamplingParams { temperature_milli: 700, top_k: 40, top_p: Perbill::from_percent(90), seed: 1 }
}

/// A queued task with a `prompt_len`-byte prompt generating the most tokens.
fn submitted<T: Config>(model: ModelId, prompt_len: u32) -> TaskId {
	let who = requester::<T>();
	let max_tokens = T::MaxGeneratedTokens::get();
	let quote = Pallet::<T>::quote(model, prompt_token_bound(prompt_len), max_tokens)
		.expect("the benchmark market has miners");
	Pallet::<T>::submit_task(
		RawOrigin::Signed(who).into(),
		model,
		vec![b'p'; prompt_len as usize],
		max_tokens,
		sampling(),
		quote.max_fee.saturating_mul(2u32.into()),
		None,
	)
	.expect("the benchmark task is valid");
	NextTaskId::<T>::get() - 1
}

/// Runs the auction of a queued task.
fn assigned<T: Config>(task: TaskId) {
	let mut info = Tasks::<T>::get(task).expect("task exists");
	let now = System::<T>::block_number();
	assert_eq!(Pallet::<T>::try_assign(task, &mut info, now), Ok(true));
	Tasks::<T>::insert(task, info);
	Queue::<T>::mutate(|queue| queue.retain(|id| *id != task));
}

fn output<T: Config>() -> (u32, Vec<u32>, Vec<u8>) {
	(
		T::MaxPromptBytes::get(),
		vec![7; T::MaxGeneratedTokens::get() as usize],
		vec![b'o'; T::MaxOutputBytes::get() as usize],
	)
}

fn fingerprint(len: u32) -> Vec<u8> {
	vec![3; len as usize]
}

fn commit_slot<T: Config>(task: TaskId, slot: &SlotOf<T>, fp: &[u8], output_hash: H256) {
	let hash = commitment(task, slot.pipeline, slot.chunk, fp, output_hash, [1; 32]);
	Pallet::<T>::commit(
		RawOrigin::Signed(slot.expert.clone()).into(),
		task,
		slot.pipeline,
		slot.chunk,
		hash,
	)
	.expect("slot commits");
}

fn reveal_slot<T: Config>(
	task: TaskId,
	slot: &SlotOf<T>,
	chunks: u32,
	fp: &[u8],
	out: &(u32, Vec<u32>, Vec<u8>),
) -> DispatchResult {
	let claim = if slot.chunk + 1 == chunks {
		RevealedOutput::Full { prompt_tokens: out.0, tokens: out.1.clone(), text: out.2.clone() }
	} else {
		RevealedOutput::Hash(output_hash(out.0, &out.1, &out.2))
	};
	Pallet::<T>::reveal(
		RawOrigin::Signed(slot.expert.clone()).into(),
		task,
		slot.pipeline,
		slot.chunk,
		fp.to_vec(),
		claim,
		[1; 32],
		None,
	)
	.map(|_| ())
	.map_err(|e| e.error)
}

/// An assigned task over `chunks` chunks with `pipelines` pipelines, two servers per
/// chunk and pipeline.
fn assigned_task<T: Config>(chunks: u32, pipelines: u8) -> TaskId {
	Verification::<T>::put(VerificationMode::Redundant);
	Redundancy::<T>::put(pipelines);
	let model = market::<T>(chunks, 2 * pipelines as u32);
	let task = submitted::<T>(model, T::MaxPromptBytes::get());
	assigned::<T>(task);
	task
}

/// Every slot of `task` commits to `output`.
fn all_commit<T: Config>(task: TaskId, fp: &[u8], out: &(u32, Vec<u32>, Vec<u8>)) {
	let hash = output_hash(out.0, &out.1, &out.2);
	for slot in Slots::<T>::get(task).iter() {
		commit_slot::<T>(task, slot, fp, hash);
	}
}

/// A fingerprint of hidden states of rows of `width` as close to `bytes` long as the
/// registry's parameters allow (at least one position); `shift` moves every value.
fn sized_fingerprint(bytes: u32, width: u32, shift: i16) -> Vec<u8> {
	let params = dllm_fingerprint::FingerprintParams {
		top_k: dllm_fingerprint::FingerprintParams::DEFAULT.top_k_for(width),
		..dllm_fingerprint::FingerprintParams::DEFAULT
	};
	let mut positions = 1u32;
	while params.encoded_len(positions + 1, width) <= bytes as usize {
		positions += 1;
	}
	let blocks = (positions as usize).div_ceil(params.block as usize);
	let k = params.top_k as usize;
	dllm_fingerprint::Fingerprint {
		kind: dllm_fingerprint::RowKind::Hidden,
		width,
		positions,
		params,
		log_rms: vec![100 + shift; positions as usize],
		projections: vec![50 + shift; positions as usize * params.projections as usize],
		top_indices: (0..blocks).flat_map(|_| 0..k as u32).collect(),
		top_values: vec![200 + shift; blocks * k],
	}
	.encode()
}

/// A task checked by prefill over `chunks` chunks with `offers` servers per chunk, its
/// generator and verifier revealed: the verifier's last chunk disagrees.
fn revealed_prefill_task<T: Config>(chunks: u32, offers: u32, bytes: u32) -> TaskId {
	Verification::<T>::put(VerificationMode::Prefill);
	let model = market::<T>(chunks, offers);
	let task = submitted::<T>(model, T::MaxPromptBytes::get());
	assigned::<T>(task);
	let out = output::<T>();
	let hash = output_hash(out.0, &out.1, &out.2);
	let slots = Slots::<T>::get(task);
	let good = sized_fingerprint(bytes, 64, 0);
	let bad = sized_fingerprint(bytes, 64, 2000);
	let fp = |slot: &SlotOf<T>| {
		if slot.role == Role::Verifier && slot.chunk + 1 == chunks {
			bad.clone()
		} else {
			good.clone()
		}
	};
	let claim = |slot: &SlotOf<T>| {
		if slot.role == Role::Verifier && slot.chunk + 1 == chunks {
			(verdict_hash(hash, true), RevealedOutput::Verdict { accepted: true })
		} else {
			(hash, RevealedOutput::Hash(hash))
		}
	};
	for role in [Role::Generator, Role::Verifier] {
		for slot in slots.iter().filter(|slot| slot.role == role) {
			let commitment =
				commitment(task, slot.pipeline, slot.chunk, &fp(slot), claim(slot).0, [1; 32]);
			let origin = RawOrigin::Signed(slot.expert.clone()).into();
			if role == Role::Generator && slot.chunk + 1 == chunks {
				let output = RevealedOutput::Full {
					prompt_tokens: out.0,
					tokens: out.1.clone(),
					text: out.2.clone(),
				};
				Pallet::<T>::commit_output(
					origin,
					task,
					slot.pipeline,
					slot.chunk,
					commitment,
					output,
				)
				.expect("the generator publishes");
			} else {
				Pallet::<T>::commit(origin, task, slot.pipeline, slot.chunk, commitment)
					.expect("slot commits");
			}
		}
	}
	// Everything but the comparison itself: reveals recorded without concluding.
	for (index, slot) in slots.iter().enumerate() {
		Fingerprints::<T>::insert(task, index as u32, BoundedVec::truncate_from(fp(slot)));
		if let RevealedOutput::Verdict { accepted } = claim(slot).1 {
			Verdicts::<T>::insert(task, index as u32, accepted);
		}
	}
	Slots::<T>::mutate(task, |slots| {
		for slot in slots.iter_mut() {
			slot.state = SlotState::Revealed(claim(slot).0);
		}
	});
	task
}

#[benchmarks]
mod benchmarks {
	use super::*;

	#[benchmark]
	fn submit_task(
		p: Linear<1, { T::MaxPromptBytes::get() }>,
		c: Linear<1, MAX_CHUNKS>,
		o: Linear<1, MAX_OFFERS>,
	) {
		Verification::<T>::put(VerificationMode::Redundant);
		let model = market::<T>(c, o);
		let who = requester::<T>();
		let max_tokens = T::MaxGeneratedTokens::get();
		let quote =
			Pallet::<T>::quote(model, prompt_token_bound(p), max_tokens).expect("miners serve");
		#[extrinsic_call]
		_(
			RawOrigin::Signed(who),
			model,
			vec![b'p'; p as usize],
			max_tokens,
			sampling(),
			quote.max_fee,
			Some(b"code".to_vec()),
		);
		assert_eq!(Queue::<T>::get().len(), 1);
	}

	#[benchmark]
	fn commit(s: Linear<1, { T::MaxSlots::get().min(MAX_CHUNKS) }>) {
		let task = assigned_task::<T>(s, 1);
		let slots = Slots::<T>::get(task);
		let out = output::<T>();
		let hash = output_hash(out.0, &out.1, &out.2);
		let fp = fingerprint(T::MaxFingerprintBytes::get());
		for slot in slots.iter().skip(1) {
			commit_slot::<T>(task, slot, &fp, hash);
		}
		let last = slots[0].clone();
		let commitment = commitment(task, last.pipeline, last.chunk, &fp, hash, [1; 32]);
		#[extrinsic_call]
		_(RawOrigin::Signed(last.expert), task, last.pipeline, last.chunk, commitment);
		assert_eq!(Tasks::<T>::get(task).map(|t| t.status), Some(TaskStatus::Committed));
	}

	/// The last reveal of a task: it settles, paying every slot's miner.
	#[benchmark]
	fn reveal(
		s: Linear<1, { T::MaxSlots::get().min(MAX_CHUNKS) }>,
		f: Linear<0, { T::MaxFingerprintBytes::get() }>,
	) {
		let task = assigned_task::<T>(s, 1);
		let out = output::<T>();
		let fp = fingerprint(f);
		all_commit::<T>(task, &fp, &out);
		let slots = Slots::<T>::get(task);
		for slot in slots.iter().take(slots.len() - 1) {
			reveal_slot::<T>(task, slot, s, &fp, &out).expect("reveal works");
		}
		let last = slots[slots.len() - 1].clone();
		let claim = RevealedOutput::Full {
			prompt_tokens: out.0,
			tokens: out.1.clone(),
			text: out.2.clone(),
		};
		#[extrinsic_call]
		_(
			RawOrigin::Signed(last.expert),
			task,
			last.pipeline,
			last.chunk,
			fp,
			claim,
			[1; 32],
			None,
		);
		assert_eq!(Tasks::<T>::get(task).map(|t| t.status), Some(TaskStatus::Completed));
	}

	/// Two pipelines disagree; the admin accepts one: pays one, slashes the other.
	#[benchmark]
	fn resolve_dispute(s: Linear<2, { T::MaxSlots::get().min(2 * MAX_CHUNKS) }>) {
		let chunks = (s / 2).max(1);
		let task = assigned_task::<T>(chunks, 2);
		let good = output::<T>();
		let mut bad = output::<T>();
		bad.1[0] = 8;
		let fp = fingerprint(T::MaxFingerprintBytes::get());
		let slots = Slots::<T>::get(task);
		for slot in slots.iter() {
			let out = if slot.pipeline == 0 { &good } else { &bad };
			commit_slot::<T>(task, slot, &fp, output_hash(out.0, &out.1, &out.2));
		}
		for slot in slots.iter() {
			let out = if slot.pipeline == 0 { &good } else { &bad };
			reveal_slot::<T>(task, slot, chunks, &fp, out).expect("reveal works");
		}
		assert_eq!(Tasks::<T>::get(task).map(|t| t.status), Some(TaskStatus::Disputed));
		let accepted = Some(output_hash(good.0, &good.1, &good.2));
		#[extrinsic_call]
		_(RawOrigin::Root, task, accepted);
		assert_eq!(Tasks::<T>::get(task).map(|t| t.status), Some(TaskStatus::Completed));
	}

	#[benchmark]
	fn set_redundancy() {
		let redundancy = T::MaxRedundancy::get();
		#[extrinsic_call]
		_(RawOrigin::Root, redundancy);
		assert_eq!(Redundancy::<T>::get(), redundancy);
	}

	#[benchmark]
	fn set_verification_mode() {
		#[extrinsic_call]
		_(RawOrigin::Root, VerificationMode::Redundant);
		assert_eq!(Verification::<T>::get(), VerificationMode::Redundant);
	}

	/// The generator's last chunk publishes `t` tokens (and the longest text) with the
	/// last commit of the generation: the verification stage opens.
	#[benchmark]
	fn commit_output(
		s: Linear<1, { (T::MaxSlots::get() / 2).min(MAX_CHUNKS) }>,
		t: Linear<1, { T::MaxGeneratedTokens::get() }>,
	) {
		Verification::<T>::put(VerificationMode::Prefill);
		let model = market::<T>(s, 2);
		let task = submitted::<T>(model, T::MaxPromptBytes::get());
		assigned::<T>(task);
		let mut out = output::<T>();
		out.1.truncate(t as usize);
		let hash = output_hash(out.0, &out.1, &out.2);
		let fp = fingerprint(T::MaxFingerprintBytes::get());
		let slots = Slots::<T>::get(task);
		let generator: Vec<_> = slots.iter().filter(|slot| slot.role == Role::Generator).collect();
		for slot in generator.iter().take(generator.len() - 1) {
			commit_slot::<T>(task, slot, &fp, hash);
		}
		let last = generator[generator.len() - 1].clone();
		let commitment = commitment(task, last.pipeline, last.chunk, &fp, hash, [1; 32]);
		let output = RevealedOutput::Full {
			prompt_tokens: out.0,
			tokens: out.1.clone(),
			text: out.2.clone(),
		};
		#[extrinsic_call]
		_(RawOrigin::Signed(last.expert), task, last.pipeline, last.chunk, commitment, output);
		assert_eq!(Tasks::<T>::get(task).map(|t| t.status), Some(TaskStatus::Verifying));
	}

	/// The chain compares the generator's and the verifier's fingerprints of `c`
	/// chunks (`f` bytes each): all agree but the last, so a referee round is assigned
	/// from `o` offers per chunk.
	#[benchmark]
	fn compare_work(
		c: Linear<1, { (T::MaxSlots::get() / 3).min(MAX_CHUNKS) }>,
		f: Linear<200, { T::MaxFingerprintBytes::get() }>,
		o: Linear<3, MAX_OFFERS>,
	) {
		let task = revealed_prefill_task::<T>(c, o, f);
		let info = Tasks::<T>::get(task).expect("task exists");
		let slots = Slots::<T>::get(task);
		#[block]
		{
			Pallet::<T>::compare_work(task, info, slots);
		}
		let info = Tasks::<T>::get(task).expect("task exists");
		assert_eq!(info.status, TaskStatus::Refereeing);
		// Every chunk was compared: the disagreement is the last one's.
		assert_eq!(info.dispute.map(|d| d.chunk), Some(c - 1));
	}

	/// `on_initialize` with nothing due and nothing queued.
	#[benchmark]
	fn hooks_base() {
		let now = System::<T>::block_number();
		#[block]
		{
			Pallet::<T>::on_initialize(now);
		}
	}

	/// The auction of one task over `c` chunks with `o` offers each.
	#[benchmark]
	fn assign_task(c: Linear<1, MAX_CHUNKS>, o: Linear<2, MAX_OFFERS>) {
		Verification::<T>::put(VerificationMode::Redundant);
		Redundancy::<T>::put(2);
		let model = market::<T>(c, o);
		let task = submitted::<T>(model, T::MaxPromptBytes::get());
		let mut info = Tasks::<T>::get(task).expect("task exists");
		let now = System::<T>::block_number();
		#[block]
		{
			assert_eq!(Pallet::<T>::try_assign(task, &mut info, now), Ok(true));
		}
	}

	/// A queued task reaches its deadline: refunded.
	#[benchmark]
	fn expire_queued() {
		Verification::<T>::put(VerificationMode::Redundant);
		let model = market::<T>(1, 1);
		let task = submitted::<T>(model, T::MaxPromptBytes::get());
		let now = System::<T>::block_number();
		// `handle_timeouts` reads these two and charges the reads on its own.
		let info = Tasks::<T>::get(task).expect("task exists");
		let slots = Slots::<T>::get(task);
		#[block]
		{
			Pallet::<T>::handle_timeout(task, info, slots, now);
		}
		assert_eq!(Tasks::<T>::get(task).map(|t| t.status), Some(TaskStatus::Expired));
	}

	/// Nobody committed: every slot is blamed, replacements run their auctions; the
	/// task holds as many silence claims as it can, all ripe and none explaining the
	/// stall (a claim that stands blames one slot instead of all).
	#[benchmark]
	fn end_commit_stage(s: Linear<1, { T::MaxSlots::get().min(MAX_CHUNKS) }>) {
		let task = assigned_task::<T>(s, 1);
		let now = System::<T>::block_number();
		let claims = (0..T::MaxSlots::get())
			.map(|i| SilenceClaim { pipeline: 1, by: i, silent: i + 1, ripe_at: now })
			.collect::<Vec<_>>();
		SilenceClaims::<T>::insert(
			task,
			SilenceRecord { stage_deadline: now, claims: BoundedVec::truncate_from(claims) },
		);
		// `handle_timeouts` reads these two and charges the reads on its own.
		let info = Tasks::<T>::get(task).expect("task exists");
		let slots = Slots::<T>::get(task);
		#[block]
		{
			Pallet::<T>::handle_timeout(task, info, slots, now);
		}
	}

	/// A stage claims its downstream silent, with the task's claims as full as they
	/// can be but for this one.
	#[benchmark]
	fn claim_silence(s: Linear<2, { T::MaxSlots::get().min(MAX_CHUNKS) }>) {
		let task = assigned_task::<T>(s, 1);
		let now = System::<T>::block_number();
		let deadline = Tasks::<T>::get(task).expect("task exists").deadline;
		let others = (0..T::MaxSlots::get().saturating_sub(1))
			.map(|i| SilenceClaim { pipeline: 1, by: i, silent: i + 1, ripe_at: now })
			.collect::<Vec<_>>();
		SilenceClaims::<T>::insert(
			task,
			SilenceRecord { stage_deadline: deadline, claims: BoundedVec::truncate_from(others) },
		);
		let first = Slots::<T>::get(task)[0].clone();
		#[extrinsic_call]
		_(RawOrigin::Signed(first.expert), task, 0, 0, 1);
		let record = SilenceClaims::<T>::get(task).expect("claims kept");
		assert_eq!(record.claims.len() as u32, T::MaxSlots::get());
	}

	/// One pipeline revealed, the other missed a reveal: the task completes, paying
	/// the first.
	#[benchmark]
	fn end_reveal_stage(s: Linear<2, { T::MaxSlots::get().min(2 * MAX_CHUNKS) }>) {
		let chunks = (s / 2).max(1);
		let task = assigned_task::<T>(chunks, 2);
		let out = output::<T>();
		let fp = fingerprint(T::MaxFingerprintBytes::get());
		all_commit::<T>(task, &fp, &out);
		let slots = Slots::<T>::get(task);
		for slot in slots.iter().take(slots.len() - 1) {
			reveal_slot::<T>(task, slot, chunks, &fp, &out).expect("reveal works");
		}
		let now = System::<T>::block_number();
		// `handle_timeouts` reads these two and charges the reads on its own.
		let info = Tasks::<T>::get(task).expect("task exists");
		let slots = Slots::<T>::get(task);
		#[block]
		{
			Pallet::<T>::handle_timeout(task, info, slots, now);
		}
		assert_eq!(Tasks::<T>::get(task).map(|t| t.status), Some(TaskStatus::Completed));
	}

	/// A finished task's data leaves storage.
	#[benchmark]
	fn remove_result(s: Linear<1, { T::MaxSlots::get().min(MAX_CHUNKS) }>) {
		let task = assigned_task::<T>(s, 1);
		let out = output::<T>();
		let fp = fingerprint(T::MaxFingerprintBytes::get());
		all_commit::<T>(task, &fp, &out);
		for slot in Slots::<T>::get(task).iter() {
			reveal_slot::<T>(task, slot, s, &fp, &out).expect("reveal works");
		}
		let end = Tasks::<T>::get(task).expect("task exists").deadline;
		RetentionCursor::<T>::put(end);
		#[block]
		{
			Pallet::<T>::remove_old_results(end, Weight::MAX);
		}
		assert!(!Prompts::<T>::contains_key(task));
	}

	impl_benchmark_test_suite!(Pallet, crate::mock::new_test_ext(), crate::mock::Test);
}
