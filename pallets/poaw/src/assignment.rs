//! The auction side of a task: the quote, each chunk's bids, the price cap, forming
//! pipelines at assignment, replacing a missed slot, and the per-block assignment of
//! queued tasks.

use crate::*;
use alloc::{collections::btree_map::BTreeMap, vec::Vec};

impl<T: Config> Pallet<T> {
	/// The least `max_fee` that lets the auction assign a task of `prompt_tokens` +
	/// `max_tokens` tokens now: every chunk's `r`-th cheapest eligible ask, over all
	/// chunks the highest, times the work units (`r` pipelines; with prefill
	/// verification one generator and `PrefillShare` of a verifier, `r` = 2 asks), the
	/// model's layers and the tokens, grossed up by `MinerShare`.
	pub fn quote(
		model: ModelId,
		prompt_tokens: u32,
		max_tokens: u32,
	) -> Result<FeeQuote<BalanceOf<T>>, QuoteError> {
		Self::quote_generators(model, prompt_tokens, max_tokens, 1)
	}

	/// [`Self::quote`] for a task with `generators` generators (prefill verification):
	/// `generators + 1` asks per chunk, and the work units of that many generations and
	/// of the verifier's prefill of each.
	pub fn quote_generators(
		model: ModelId,
		prompt_tokens: u32,
		max_tokens: u32,
		generators: u8,
	) -> Result<FeeQuote<BalanceOf<T>>, QuoteError> {
		let mode = Verification::<T>::get();
		Self::quote_excluding(model, prompt_tokens, max_tokens, &[], mode, generators)
	}

	/// `submit_task` and `submit_task_with_generators`: checks the request, holds
	/// `max_fee` and queues the task.
	pub(crate) fn do_submit(
		requester: T::AccountId,
		request: TaskRequest<BalanceOf<T>>,
		generators: u8,
	) -> DispatchResultWithPostInfo {
		let TaskRequest { model, prompt, max_tokens, sampling, max_fee, domain } = request;
		ensure!(!prompt.is_empty(), Error::<T>::EmptyPrompt);
		let prompt: BoundedVec<u8, T::MaxPromptBytes> =
			prompt.try_into().map_err(|_| Error::<T>::PromptTooLong)?;
		ensure!(max_tokens > 0, Error::<T>::ZeroMaxTokens);
		ensure!(max_tokens <= T::MaxGeneratedTokens::get(), Error::<T>::TooManyTokens);
		ensure!(
			sampling.temperature_milli <= 10_000 && !sampling.top_p.is_zero(),
			Error::<T>::InvalidSampling
		);
		let domain = match domain {
			Some(tag) => {
				let tag = Domain::try_from(tag).map_err(|_| Error::<T>::InvalidDomain)?;
				ensure!(!tag.is_empty(), Error::<T>::InvalidDomain);
				Some(tag)
			}
			None => None,
		};
		let prompt_bytes = prompt.len() as u32;
		// The requester never bids in its own auction, so its own offers do not count.
		let mode = Verification::<T>::get();
		let allowed = match mode {
			VerificationMode::Prefill => 1..=T::MaxGenerators::get(),
			VerificationMode::Redundant => 1..=1,
		};
		ensure!(allowed.contains(&generators), Error::<T>::InvalidGenerators);
		let quote = Self::quote_excluding(
			model,
			prompt_token_bound(prompt_bytes),
			max_tokens,
			&Self::requester_side(&requester),
			mode,
			generators,
		)
		.map_err(Error::<T>::from)?;
		// A task no miner could finish would cost the miners reputation for nothing.
		let limits = T::Models::limits(model).ok_or(Error::<T>::UnknownModel)?;
		ensure!(quote.tokens <= limits.max_context, Error::<T>::ExceedsContext);
		ensure!(
			max_tokens.saturating_mul(limits.max_token_bytes) <= T::MaxOutputBytes::get(),
			Error::<T>::OutputMayNotFit
		);
		ensure!(max_fee >= quote.max_fee, Error::<T>::FeeBelowQuote);
		ensure!(
			QueuedBy::<T>::get(&requester) < T::MaxQueuedPerRequester::get(),
			Error::<T>::TooManyQueued
		);
		ensure!(
			T::Currency::can_hold(&HoldReason::Escrow.into(), &requester, max_fee),
			Error::<T>::InsufficientBalance
		);
		let id = NextTaskId::<T>::get();
		Queue::<T>::try_append(id).map_err(|_| Error::<T>::QueueFull)?;
		// The task refers to its model until it ends, so the model cannot leave the
		// registry under running work.
		T::Models::acquire(model)?;
		T::Currency::hold(&HoldReason::Escrow.into(), &requester, max_fee)
			.map_err(|_| Error::<T>::InsufficientBalance)?;
		NextTaskId::<T>::put(id.checked_add(1).ok_or(Error::<T>::Overflow)?);
		QueuedBy::<T>::mutate(&requester, |queued| queued.saturating_inc());
		let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
		let prompt_hash = BlakeTwo256::hash(&prompt);
		let tie_seed = BlakeTwo256::hash_of(&(
			polkadot_sdk::frame_system::Pallet::<T>::parent_hash(),
			&requester,
			prompt_hash,
			sampling.seed,
		));
		let deadline = now.saturating_add(T::AssignmentTimeout::get());
		Tasks::<T>::insert(
			id,
			TaskInfo {
				requester: requester.clone(),
				model,
				domain,
				prompt_hash,
				prompt_bytes,
				max_tokens,
				sampling,
				escrow: max_fee,
				status: TaskStatus::Queued,
				submitted_at: now,
				deadline,
				price_cap: Zero::zero(),
				pipelines: 0,
				generators,
				reassignments: 0,
				mode,
				dispute: None,
				tie_seed,
				settlement: None,
			},
		);
		Prompts::<T>::insert(id, prompt);
		Timeouts::<T>::insert(deadline, id, ());
		Self::deposit_event(Event::TaskSubmitted { task: id, requester, model, max_fee });
		// The auction work scales with the model's chunks; offers are charged at most.
		let chunks = T::Models::chunk_count(model).unwrap_or(T::MaxSlots::get());
		Ok(Some(T::WeightInfo::submit_task(prompt_bytes, chunks, T::MaxOffersPerChunk::get()))
			.into())
	}

	/// The requester and the expert it signs for as its operator, if any: neither bids
	/// for the requester's task (R8), whichever of its keys it submits with.
	pub(crate) fn requester_side(requester: &T::AccountId) -> Vec<T::AccountId> {
		let mut side = alloc::vec![requester.clone()];
		side.extend(T::Experts::operated_expert(requester));
		side
	}

	/// [`Self::quote`] without the offers of `excluded` (a requester's own).
	pub(crate) fn quote_excluding(
		model: ModelId,
		prompt_tokens: u32,
		max_tokens: u32,
		excluded: &[T::AccountId],
		mode: VerificationMode,
		generators: u8,
	) -> Result<FeeQuote<BalanceOf<T>>, QuoteError> {
		match T::Models::status(model) {
			None => return Err(QuoteError::UnknownModel),
			Some(ModelStatus::Active) => {}
			Some(_) => return Err(QuoteError::ModelNotActive),
		}
		let layers = T::Models::chunk_layers(model).ok_or(QuoteError::UnknownModel)?;
		if layers.len() as u32 > T::MaxSlots::get() {
			return Err(QuoteError::ModelTooLarge);
		}
		let mut asks_per_chunk = Vec::with_capacity(layers.len());
		for chunk in 0..layers.len() as u32 {
			// With several generators a winner may become the verifier, one slot per
			// generator: only offers with that much room count, as in the auction.
			let room = Self::slots_per_win(mode, generators);
			let mut asks: Vec<u128> = Self::bids(model, chunk, None, H256::zero(), excluded)
				.into_iter()
				.filter(|(_, free, _)| *free >= room)
				.map(|(bid, _, _)| bid.price)
				.collect();
			asks.sort();
			asks_per_chunk.push(asks);
		}
		let fewest = asks_per_chunk.iter().map(Vec::len).min().unwrap_or(0);
		let (redundancy, winners) = match mode {
			VerificationMode::Redundant => {
				// Saturating: 256 offers must not wrap to none (L8 of the review).
				let fewest = u8::try_from(fewest).unwrap_or(u8::MAX);
				let r = Self::target_redundancy(layers.len() as u32).min(fewest);
				(r, r)
			}
			// Per chunk the generators and a verifier (`g + 1` miners), if the slots
			// hold the generators' and the verifier's pipeline for each and, with
			// several generators, one referee pipeline besides.
			VerificationMode::Prefill => {
				let g = generators.max(1);
				let fits = Self::prefill_slots(layers.len() as u32, g) <= T::MaxSlots::get();
				if fewest > usize::from(g) && fits {
					(g, g.saturating_add(1))
				} else {
					(0, 0)
				}
			}
		};
		if redundancy == 0 {
			return Err(QuoteError::NoMinersAvailable);
		}
		let price = asks_per_chunk
			.iter()
			.filter_map(|asks| {
				(winners as usize).checked_sub(1).and_then(|last| asks.get(last)).copied()
			})
			.max()
			.unwrap_or(0);
		let total_layers: u32 = layers.iter().fold(0u32, |sum, l| sum.saturating_add(*l));
		let tokens = prompt_tokens.checked_add(max_tokens).ok_or(QuoteError::Overflow)?;
		let units = Self::work_units(mode, redundancy, total_layers, tokens);
		let miners = price.checked_mul(units).ok_or(QuoteError::Overflow)?;
		let fee = T::MinerShare::get().saturating_reciprocal_mul_ceil(miners);
		let max_fee: BalanceOf<T> = fee.try_into().map_err(|_| QuoteError::Overflow)?;
		Ok(FeeQuote {
			max_fee,
			redundancy,
			price_per_token_layer: price.saturated_into(),
			tokens,
			layers: total_layers,
			mode,
		})
	}

	/// Slots of its chunk a winner of a task's auction may take: one, or with prefill
	/// verification one per generator (it may become the verifier, checking each).
	pub(crate) fn slots_per_win(mode: VerificationMode, generators: u8) -> u32 {
		match mode {
			VerificationMode::Prefill => u32::from(generators.max(1)),
			VerificationMode::Redundant => 1,
		}
	}

	/// Slots a prefill task of `chunks` chunks and `generators` generators must find room
	/// for in `MaxSlots`: the generators' pipelines and the verifier's for each, and with
	/// several generators one referee pipeline besides, so that a dispute can be refereed.
	pub(crate) fn prefill_slots(chunks: u32, generators: u8) -> u32 {
		let pipelines = u32::from(generators.max(1)).saturating_mul(2);
		let referee = if generators > 1 { 1 } else { 0 };
		chunks.saturating_mul(pipelines.saturating_add(referee))
	}

	/// Token-layers of work a task pays for at one price: `pipelines` generating
	/// pipelines, plus with prefill verification `PrefillShare` of each of them (the
	/// verifier checks each; rounded up, so that the verifier's pay always fits).
	pub(crate) fn work_units(
		mode: VerificationMode,
		pipelines: u8,
		layers: u32,
		tokens: u32,
	) -> u128 {
		let generation = (layers as u128).saturating_mul(tokens as u128);
		let units = generation.saturating_mul(pipelines as u128);
		match mode {
			VerificationMode::Redundant => units,
			VerificationMode::Prefill => units.saturating_add(
				T::PrefillShare::get().mul_ceil(generation).saturating_mul(pipelines as u128),
			),
		}
	}

	/// The format `expert` declared for `chunk` of `model` (the loosest if it no longer
	/// serves it, so that comparing its work is never stricter than registered).
	pub(crate) fn offered_format(
		model: ModelId,
		chunk: ChunkIndex,
		expert: &T::AccountId,
	) -> NumericFormat {
		T::Experts::offers(model, chunk)
			.into_iter()
			.find(|offer| &offer.expert == expert)
			.map_or(NumericFormat::Bf16, |offer| offer.format)
	}

	/// Redundancy to aim for with a model of `chunks` chunks.
	pub(crate) fn target_redundancy(chunks: u32) -> u8 {
		let by_slots = T::MaxSlots::get().checked_div(chunks.max(1)).unwrap_or(0);
		Redundancy::<T>::get().min(by_slots.min(u8::MAX as u32) as u8)
	}

	/// The auction's bids for a chunk, leaving out `excluded` experts, each with the
	/// expert's free capacity.
	pub(crate) fn bids(
		model: ModelId,
		chunk: ChunkIndex,
		domain: Option<&Domain>,
		tie_seed: H256,
		excluded: &[T::AccountId],
	) -> Vec<BidWithCapacity<T::AccountId>> {
		let offers: Vec<_> = T::Experts::offers(model, chunk)
			.into_iter()
			.filter(|offer| !excluded.contains(&offer.expert))
			.filter_map(|offer| {
				let quality = T::Quality::quality(&offer.expert, domain)?;
				let speed = Throughput::<T>::get(&offer.expert);
				Some((offer, quality, speed))
			})
			.collect();
		let best = offers.iter().map(|(_, _, speed)| *speed).max().unwrap_or(0);
		offers
			.into_iter()
			.map(|(offer, quality, speed)| {
				let bid = auction::Bid {
					weight: auction::weight(
						quality.deconstruct(),
						T::ThroughputBonus::get().deconstruct(),
						speed,
						best,
					),
					tie_key: BlakeTwo256::hash_of(&(tie_seed, &offer.expert)).0,
					price: offer.price_per_token_layer.saturated_into(),
					expert: offer.expert,
				};
				(bid, offer.free_capacity, offer.format)
			})
			.collect()
	}

	/// Highest price per token per layer `escrow` pays to `pipelines` pipelines (and a
	/// verifier, with prefill verification) of a model with `layers` layers for
	/// `tokens` tokens.
	pub(crate) fn price_cap(
		escrow: BalanceOf<T>,
		mode: VerificationMode,
		pipelines: u8,
		layers: u32,
		tokens: u32,
	) -> u128 {
		let budget: u128 = T::MinerShare::get().mul_floor(escrow).saturated_into();
		budget.checked_div(Self::work_units(mode, pipelines, layers, tokens)).unwrap_or(0)
	}

	/// Runs the auctions of a queued task. `Ok(true)`: assigned; `Ok(false)`: not
	/// enough miners now; `Err`: the task cannot run (its model is gone).
	pub(crate) fn try_assign(
		task: TaskId,
		info: &mut TaskOf<T>,
		now: BlockNumberFor<T>,
	) -> Result<bool, ()> {
		if T::Models::status(info.model).is_none_or(|s| s == ModelStatus::Retired) {
			return Err(());
		}
		let layers = T::Models::chunk_layers(info.model).ok_or(())?;
		let chunks = layers.len() as u32;
		let total_layers = layers.iter().fold(0u32, |sum, l| sum.saturating_add(*l));
		let tokens = prompt_token_bound(info.prompt_bytes).saturating_add(info.max_tokens);
		// Ties are broken with the hash of the block before assignment, which the
		// requester did not know when it chose its prompt and seed (R8).
		let tie_seed = BlakeTwo256::hash_of(&(
			info.tie_seed,
			polkadot_sdk::frame_system::Pallet::<T>::parent_hash(),
		));
		let excluded = Self::requester_side(&info.requester);
		let bids: Vec<_> = (0..chunks)
			.map(|chunk| Self::bids(info.model, chunk, info.domain.as_ref(), tie_seed, &excluded))
			.collect();
		// Redundant: as many pipelines as the miners allow, down to one. Prefill: the
		// generators and a verifier, disjoint; the verifier's pipeline is repeated for
		// each generator it checks.
		let generators = info.generator_count();
		let side_slots = Self::prefill_slots(chunks, generators);
		let (choices, generating): (Vec<u8>, u8) = match info.mode {
			VerificationMode::Redundant => {
				((1..=Self::target_redundancy(chunks)).rev().collect(), 0)
			}
			VerificationMode::Prefill if side_slots <= T::MaxSlots::get() => {
				(alloc::vec![generators.saturating_add(1)], generators)
			}
			VerificationMode::Prefill => (Vec::new(), generators),
		};
		let Some((pipelines, cap, awards)) = choices.into_iter().find_map(|r| {
			let paid = if generating > 0 { generating } else { r };
			let cap = Self::price_cap(info.escrow, info.mode, paid, total_layers, tokens);
			// Which winner becomes the verifier is known only once the pipelines are formed,
			// so with several generators every winner must have room for its copies.
			let slots_per_win = Self::slots_per_win(info.mode, generators);
			Self::award_all(&bids, r, cap, slots_per_win).map(|awards| (r, cap, awards))
		}) else {
			return Ok(false);
		};
		let mut slots: BoundedVec<SlotOf<T>, T::MaxSlots> = BoundedVec::new();
		for (p, pipeline) in Self::form_pipelines(awards, pipelines).into_iter().enumerate() {
			let p = p as PipelineIndex;
			let (role, copies) = match info.mode {
				VerificationMode::Prefill if p == generators => (Role::Verifier, generators),
				_ => (Role::Generator, 1),
			};
			for copy in 0..copies {
				for (chunk, award) in pipeline.iter().enumerate() {
					let format = bids
						.get(chunk)
						.and_then(|chunk_bids| {
							chunk_bids.iter().find(|(bid, _, _)| bid.expert == award.expert)
						})
						.map_or(NumericFormat::Bf16, |(_, _, format)| *format);
					let _ = slots.try_push(Slot {
						pipeline: p.saturating_add(copy),
						chunk: chunk as u32,
						expert: award.expert.clone(),
						role,
						format,
						threshold: award.threshold.saturated_into(),
						assigned_at: now,
						state: SlotState::Assigned,
					});
				}
			}
		}
		// The verifier must not check work of its own.
		if info.mode == VerificationMode::Prefill {
			let generator: Vec<&T::AccountId> =
				slots.iter().filter(|s| s.role == Role::Generator).map(|s| &s.expert).collect();
			if slots.iter().any(|s| s.role == Role::Verifier && generator.contains(&&s.expert)) {
				return Ok(false);
			}
		}
		// Capacity was checked through the offers; an expert winning more slots than
		// it has room for is caught here and the task waits.
		let counted = polkadot_sdk::frame_support::storage::with_storage_layer(|| {
			for slot in slots.iter() {
				T::Experts::note_assigned(&slot.expert)?;
			}
			Ok::<(), DispatchError>(())
		});
		if counted.is_err() {
			return Ok(false);
		}
		info.status = TaskStatus::Assigned;
		info.tie_seed = tie_seed;
		info.pipelines = match info.mode {
			VerificationMode::Prefill => info.side_pipelines(),
			VerificationMode::Redundant => pipelines,
		};
		info.price_cap = cap.saturated_into();
		Self::reschedule(task, info, now.saturating_add(T::CommitPeriod::get()));
		for slot in slots.iter() {
			MinerTasks::<T>::insert(&slot.expert, task, ());
			Self::deposit_event(Event::SlotAssigned {
				task,
				pipeline: slot.pipeline,
				chunk: slot.chunk,
				expert: slot.expert.clone(),
				threshold: slot.threshold,
			});
		}
		Slots::<T>::insert(task, slots);
		Self::deposit_event(Event::TaskAssigned {
			task,
			pipelines: info.pipelines,
			price_cap: info.price_cap,
			deadline: info.deadline,
		});
		Ok(true)
	}

	/// Every chunk's `r` winners under `cap`, each win costing `slots_per_win` slots of
	/// the winner's free capacity (more than one when the win may become the verifier's
	/// slot, repeated for each generator); `None` when some chunk has fewer.
	pub(crate) fn award_all(
		bids: &[Vec<BidWithCapacity<T::AccountId>>],
		r: u8,
		cap: u128,
		slots_per_win: u32,
	) -> Option<Vec<Vec<auction::Award<T::AccountId>>>> {
		let mut used: BTreeMap<T::AccountId, u32> = BTreeMap::new();
		let mut all = Vec::with_capacity(bids.len());
		for chunk_bids in bids {
			let available: Vec<_> = chunk_bids
				.iter()
				.filter(|(bid, free, _)| {
					let taken = used.get(&bid.expert).copied().unwrap_or(0);
					taken.saturating_add(slots_per_win) <= *free
				})
				.map(|(bid, _, _)| bid.clone())
				.collect();
			let awards = auction::run(&available, r as usize, cap);
			if awards.len() < r as usize {
				return None;
			}
			for award in awards.iter() {
				let taken = used.entry(award.expert.clone()).or_default();
				*taken = taken.saturating_add(slots_per_win);
			}
			all.push(awards);
		}
		Some(all)
	}

	/// Arranges every chunk's winners into `r` pipelines, keeping pipelines disjoint
	/// where the winners allow: a pipeline takes back a miner it already has (one
	/// expert serving consecutive chunks), else one no other pipeline has, else the
	/// best left. Returns the pipelines, each in chunk order.
	pub(crate) fn form_pipelines(
		awards: Vec<Vec<auction::Award<T::AccountId>>>,
		r: u8,
	) -> Vec<Vec<auction::Award<T::AccountId>>> {
		let mut pipelines: Vec<Vec<auction::Award<T::AccountId>>> =
			(0..r).map(|_| Vec::with_capacity(awards.len())).collect();
		for mut chunk_awards in awards {
			for p in 0..pipelines.len() {
				let has = |i: usize, who: &T::AccountId| {
					pipelines.get(i).is_some_and(|pl| pl.iter().any(|a| &a.expert == who))
				};
				let pick = chunk_awards
					.iter()
					.position(|award| has(p, &award.expert))
					.or_else(|| {
						chunk_awards.iter().position(|award| {
							!(0..pipelines.len()).any(|q| q != p && has(q, &award.expert))
						})
					})
					.unwrap_or(0);
				if pick < chunk_awards.len() {
					let award = chunk_awards.remove(pick);
					if let Some(pipeline) = pipelines.get_mut(p) {
						pipeline.push(award);
					}
				}
			}
		}
		pipelines
	}

	/// The next best miner for a missed slot: the chunk's auction again, without the
	/// task's other pipelines' miners and without those replaced before, at the
	/// task's price cap. It must have room for one more task.
	pub(crate) fn replacement(
		info: &TaskOf<T>,
		slots: &[SlotOf<T>],
		replaced: &[T::AccountId],
		missed: &SlotOf<T>,
	) -> Option<auction::Award<T::AccountId>> {
		let mut excluded: Vec<T::AccountId> = replaced.to_vec();
		excluded.extend(Self::requester_side(&info.requester));
		excluded.extend(
			slots
				.iter()
				.filter(|slot| slot.pipeline != missed.pipeline)
				.map(|slot| slot.expert.clone()),
		);
		let bids: Vec<_> =
			Self::bids(info.model, missed.chunk, info.domain.as_ref(), info.tie_seed, &excluded)
				.into_iter()
				.map(|(bid, _, _)| bid)
				.collect();
		let award = auction::run(&bids, 1, info.price_cap.saturated_into()).into_iter().next()?;
		T::Experts::note_assigned(&award.expert).ok()?;
		Some(award)
	}

	/// Runs the auction for up to `MaxAssignmentsPerBlock` queued tasks, oldest first,
	/// as many as `budget` holds (each charged its worst case for its model before it
	/// runs); a task without enough miners goes to the back of the queue.
	pub(crate) fn assign_queued(now: BlockNumberFor<T>, budget: Weight) -> Weight {
		let mut queue = Queue::<T>::get();
		if queue.is_empty() {
			return T::DbWeight::get().reads(1);
		}
		let mut weight = T::DbWeight::get().reads_writes(1, 1);
		let rounds = T::MaxAssignmentsPerBlock::get().min(queue.len() as u32);
		let mut waiting = Vec::new();
		for _ in 0..rounds {
			let Some(task) = queue.first().copied() else { break };
			let Some(mut info) = Tasks::<T>::get(task) else {
				queue.remove(0);
				weight.saturating_accrue(T::DbWeight::get().reads(1));
				continue;
			};
			// Submission refused models with more chunks than `MaxSlots`; the cap keeps
			// the head of the queue within `heaviest_auction` whatever happens.
			let chunks = T::Models::chunk_count(info.model).unwrap_or(0).min(T::MaxSlots::get());
			let cost = T::DbWeight::get()
				.reads(2)
				.saturating_add(T::WeightInfo::assign_task(chunks, T::MaxOffersPerChunk::get()));
			if weight.saturating_add(cost).any_gt(budget) {
				break;
			}
			weight.saturating_accrue(cost);
			queue.remove(0);
			match Self::try_assign(task, &mut info, now) {
				Ok(true) => {
					Self::left_queue(&info.requester);
					Tasks::<T>::insert(task, info);
				}
				Ok(false) => waiting.push(task),
				Err(()) => {
					// Its model left the registry: not the requester's doing, no fee.
					Self::left_queue(&info.requester);
					Self::expire(task, info, &[], Perbill::zero());
				}
			}
		}
		for task in waiting {
			let _ = queue.try_push(task);
		}
		Queue::<T>::put(queue);
		weight
	}

	/// The heaviest auction: a model of `MaxSlots` chunks (submission refuses larger
	/// ones) at the most offers per chunk, with one read more than `assign_queued`.
	pub fn heaviest_auction() -> Weight {
		T::DbWeight::get().reads(3).saturating_add(T::WeightInfo::assign_task(
			T::MaxSlots::get(),
			T::MaxOffersPerChunk::get(),
		))
	}

	/// One of `requester`'s tasks left the queue.
	pub(crate) fn left_queue(requester: &T::AccountId) {
		QueuedBy::<T>::mutate_exists(requester, |queued| {
			*queued = queued.map(|n| n.saturating_sub(1)).filter(|n| *n > 0);
		});
	}
}
