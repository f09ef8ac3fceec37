//! # Experts
//!
//! The LLM-Net respondents of DLLM: GPU miners who stake DLLM, say which domains they
//! are expert in, where their node is (its network PeerId), what they charge per token
//! per layer and how many tasks they take at once, and which model chunks they hold.
//!
//! Money stays in the owner's account, held under a reason of this pallet (fungible
//! holds): `ExpertBond` for an expert's own stake, `Delegation` for stake delegated to
//! an expert, `Unbonding` for stake on its way out, `Deposit` for the storage an expert
//! occupies (its profile and every chunk it serves). Unbonded stake is released after
//! the unbonding period (a storage value root can change, so a dev chain can use a short
//! one).
//!
//! The task pallet uses experts through [`ExpertRegistry`]: the offers for a chunk, pay
//! (commission to the expert, the rest pro rata over its bond and delegations), slash
//! (bond and delegations pro rata, to the community fund) and capacity accounting, which
//! also keeps an expert with assigned work from deregistering.

#![cfg_attr(not(feature = "std"), no_std)]
// Runtime code must not panic or overflow: no `unwrap`, no unchecked indexing or
// arithmetic outside the tests (checked by clippy in CI).
#![cfg_attr(
	not(test),
	deny(clippy::arithmetic_side_effects, clippy::indexing_slicing, clippy::unwrap_used)
)]

extern crate alloc;

pub use pallet::*;

#[cfg(feature = "runtime-benchmarks")]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing, clippy::unwrap_used)]
mod benchmarking;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;
pub mod weights;

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
pub use dllm_primitives::market::{
	ChunkIndex, ChunkOffer, Domain, ExpertRegistry, ModelId, ModelRegistry, ModelStatus,
	NumericFormat,
};
use polkadot_sdk::{
	frame_support::{
		pallet_prelude::*,
		traits::{
			fungible::{Inspect, InspectHold, Mutate, MutateHold},
			tokens::{Fortitude, Precision, Preservation, Restriction},
		},
		BoundedVec, CloneNoBound, DebugNoBound, EqNoBound, PartialEqNoBound,
	},
	frame_system::pallet_prelude::BlockNumberFor,
	sp_core::H256,
	sp_runtime::{
		traits::{CheckedAdd, CheckedSub, Saturating, Zero},
		Perbill,
	},
};
use scale_info::TypeInfo;
pub use weights::WeightInfo;

/// Amounts in the staking currency.
pub type BalanceOf<T> = <<T as Config>::Currency as Inspect<
	<T as polkadot_sdk::frame_system::Config>::AccountId,
>>::Balance;

/// A chunk of a model an expert serves, and the number format its node computes it in.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	Debug,
	serde::Serialize,
	serde::Deserialize,
)]
pub struct ServedChunk {
	/// The model.
	pub model: ModelId,
	/// The chunk's index in the model's chunking.
	pub chunk: ChunkIndex,
	/// The format its node computes in (one the model accepts).
	pub format: NumericFormat,
}

impl ServedChunk {
	/// Whether this is chunk `chunk` of `model`, in whatever format.
	pub fn is(&self, model: ModelId, chunk: ChunkIndex) -> bool {
		self.model == model && self.chunk == chunk
	}
}

/// What an expert says about itself; all of it can change with `update_profile`.
#[derive(
	CloneNoBound,
	PartialEqNoBound,
	EqNoBound,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	DebugNoBound,
)]
#[scale_info(skip_type_params(T))]
#[codec(mel_bound())]
pub struct ExpertProfile<T: Config> {
	/// Domains the expert is good at.
	pub domains: BoundedVec<Domain, T::MaxDomains>,
	/// The libp2p PeerId of the expert's node, as bytes (a multihash).
	pub peer_id: BoundedVec<u8, T::MaxPeerIdLength>,
	/// Asking price per token per layer run.
	pub price_per_token_layer: BalanceOf<T>,
	/// Most tasks the expert runs at once.
	pub max_concurrent_tasks: u32,
	/// Share of every payment the expert keeps before its stake is paid pro rata.
	pub commission: Perbill,
}

/// A registered expert.
#[derive(
	CloneNoBound,
	PartialEqNoBound,
	EqNoBound,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	DebugNoBound,
)]
#[scale_info(skip_type_params(T))]
#[codec(mel_bound())]
pub struct ExpertInfo<T: Config> {
	/// The expert's own stake, held as `ExpertBond`.
	pub bond: BalanceOf<T>,
	/// Stake delegated to the expert, held on the delegators as `Delegation`.
	pub delegated: BalanceOf<T>,
	/// Number of accounts delegating to the expert.
	pub delegators: u32,
	/// Held as `Deposit`: the profile deposit plus one per served chunk.
	pub deposit: BalanceOf<T>,
	/// What the expert says about itself.
	pub profile: ExpertProfile<T>,
	/// The chunks it serves.
	pub serving: BoundedVec<ServedChunk, T::MaxChunksServed>,
	/// Tasks assigned to it and not finished.
	pub active_tasks: u32,
}

impl<T: Config> ExpertInfo<T> {
	/// Bond plus delegations.
	pub fn stake(&self) -> BalanceOf<T> {
		self.bond.saturating_add(self.delegated)
	}
}

/// Stake on its way out, free to withdraw from block `unlock_at`.
#[derive(
	CloneNoBound,
	PartialEqNoBound,
	EqNoBound,
	Encode,
	Decode,
	DecodeWithMemTracking,
	MaxEncodedLen,
	TypeInfo,
	DebugNoBound,
)]
#[scale_info(skip_type_params(T))]
#[codec(mel_bound())]
pub struct UnbondingChunk<T: Config> {
	/// Held as `Unbonding` until withdrawn.
	pub amount: BalanceOf<T>,
	/// First block at which `withdraw_unbonded` releases it.
	pub unlock_at: BlockNumberFor<T>,
}

#[polkadot_sdk::frame_support::pallet]
pub mod pallet {
	use super::*;
	use polkadot_sdk::frame_system::pallet_prelude::*;

	/// The layout of this pallet's storage. 0: as first released; a change of layout
	/// raises it, with a versioned migration in the runtime's `Migrations`.
	pub const STORAGE_VERSION: StorageVersion = StorageVersion::new(0);

	#[pallet::pallet]
	#[pallet::storage_version(STORAGE_VERSION)]
	pub struct Pallet<T>(_);

	/// Why this pallet holds funds.
	#[pallet::composite_enum]
	pub enum HoldReason {
		/// An expert's own stake.
		ExpertBond,
		/// Stake delegated to an expert.
		Delegation,
		/// Stake waiting out the unbonding period.
		Unbonding,
		/// Storage deposit for an expert's profile and served chunks.
		Deposit,
	}

	#[pallet::config]
	pub trait Config: polkadot_sdk::frame_system::Config<RuntimeEvent: From<Event<Self>>> {
		/// The staking currency (DLLM).
		type Currency: Mutate<Self::AccountId>
			+ MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>;
		/// The runtime's hold reasons.
		type RuntimeHoldReason: From<HoldReason>;
		/// The model registry: chunk hashes, model status, references.
		type Models: ModelRegistry;
		/// Where slashed stake goes: the community fund.
		type SlashDestination: Get<Self::AccountId>;
		/// Who may change the unbonding period.
		type AdminOrigin: EnsureOrigin<Self::RuntimeOrigin>;
		/// Least own stake of an expert.
		#[pallet::constant]
		type MinExpertBond: Get<BalanceOf<Self>>;
		/// Least stake of one delegation.
		#[pallet::constant]
		type MinDelegation: Get<BalanceOf<Self>>;
		/// Held while an account is registered as an expert.
		#[pallet::constant]
		type ExpertDeposit: Get<BalanceOf<Self>>;
		/// Held for every chunk an expert serves.
		#[pallet::constant]
		type ChunkDeposit: Get<BalanceOf<Self>>;
		/// Unbonding period until root sets one.
		#[pallet::constant]
		type DefaultUnbondingPeriod: Get<BlockNumberFor<Self>>;
		/// Highest commission an expert may ask.
		#[pallet::constant]
		type MaxCommission: Get<Perbill>;
		/// Most domains of an expert.
		#[pallet::constant]
		type MaxDomains: Get<u32>;
		/// Longest PeerId, in bytes.
		#[pallet::constant]
		type MaxPeerIdLength: Get<u32>;
		/// Most chunks one expert serves.
		#[pallet::constant]
		type MaxChunksServed: Get<u32>;
		/// Most experts serving one chunk.
		#[pallet::constant]
		type MaxExpertsPerChunk: Get<u32>;
		/// Most accounts delegating to one expert.
		#[pallet::constant]
		type MaxDelegatorsPerExpert: Get<u32>;
		/// Most pending unbonding entries of one account.
		#[pallet::constant]
		type MaxUnbondingChunks: Get<u32>;
		/// Weights of this pallet's calls.
		type WeightInfo: WeightInfo;
	}

	/// Registered experts.
	#[pallet::storage]
	pub type Experts<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, ExpertInfo<T>>;

	/// Stake delegated: expert → delegator → amount.
	#[pallet::storage]
	pub type Delegations<T: Config> = StorageDoubleMap<
		_,
		Blake2_128Concat,
		T::AccountId,
		Blake2_128Concat,
		T::AccountId,
		BalanceOf<T>,
	>;

	/// Each account's stake waiting out the unbonding period, oldest first.
	#[pallet::storage]
	pub type Unbonding<T: Config> = StorageMap<
		_,
		Blake2_128Concat,
		T::AccountId,
		BoundedVec<UnbondingChunk<T>, T::MaxUnbondingChunks>,
		ValueQuery,
	>;

	/// The experts serving each chunk, in the order they started.
	#[pallet::storage]
	pub type ChunkServers<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		ModelId,
		Twox64Concat,
		ChunkIndex,
		BoundedVec<T::AccountId, T::MaxExpertsPerChunk>,
		ValueQuery,
	>;

	/// The key each expert named to sign its duties on chain (its miner node's key):
	/// expert → operator. The operator cannot bond, unbond, transfer the expert's funds
	/// or change its profile.
	#[pallet::storage]
	pub type Operators<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, T::AccountId>;

	/// The inverse of [`Operators`]: operator → expert (one expert per operator).
	#[pallet::storage]
	pub type OperatedExperts<T: Config> =
		StorageMap<_, Blake2_128Concat, T::AccountId, T::AccountId>;

	/// Blocks between unbonding and withdrawal.
	#[pallet::storage]
	pub type UnbondingPeriod<T: Config> =
		StorageValue<_, BlockNumberFor<T>, ValueQuery, T::DefaultUnbondingPeriod>;

	/// An expert at genesis: its bond, profile and served chunks.
	#[derive(
		CloneNoBound,
		PartialEqNoBound,
		EqNoBound,
		DebugNoBound,
		serde::Serialize,
		serde::Deserialize,
	)]
	#[serde(bound = "")]
	pub struct GenesisExpert<T: Config> {
		/// The expert's account.
		pub account: T::AccountId,
		/// Its own stake.
		pub bond: BalanceOf<T>,
		/// Domain tags as text.
		pub domains: Vec<Vec<u8>>,
		/// PeerId bytes of its node.
		pub peer_id: Vec<u8>,
		/// Price per token per layer.
		pub price_per_token_layer: BalanceOf<T>,
		/// Capacity.
		pub max_concurrent_tasks: u32,
		/// Commission.
		pub commission: Perbill,
		/// Chunks it serves (with the registered hashes).
		pub serving: Vec<ServedChunk>,
	}

	#[pallet::genesis_config]
	#[derive(polkadot_sdk::frame_support::DefaultNoBound)]
	pub struct GenesisConfig<T: Config> {
		/// Experts registered at genesis; their accounts must be able to hold the bond.
		pub experts: Vec<GenesisExpert<T>>,
		/// Unbonding period; `None` keeps the default.
		pub unbonding_period: Option<BlockNumberFor<T>>,
	}

	#[pallet::genesis_build]
	impl<T: Config> BuildGenesisConfig for GenesisConfig<T> {
		fn build(&self) {
			if let Some(period) = self.unbonding_period {
				UnbondingPeriod::<T>::put(period);
			}
			// Genesis is built off chain: a bad preset is a bug to stop on at once.
			for expert in &self.experts {
				let domains = expert
					.domains
					.iter()
					.map(|d| Domain::try_from(d.clone()).expect("genesis domain too long"))
					.collect::<Vec<_>>();
				let profile = ExpertProfile::<T> {
					domains: BoundedVec::try_from(domains).expect("too many genesis domains"),
					peer_id: BoundedVec::try_from(expert.peer_id.clone())
						.expect("genesis PeerId too long"),
					price_per_token_layer: expert.price_per_token_layer,
					max_concurrent_tasks: expert.max_concurrent_tasks,
					commission: expert.commission,
				};
				Pallet::<T>::do_register(&expert.account, expert.bond, profile)
					.expect("genesis expert cannot register");
				for chunk in &expert.serving {
					let hash = T::Models::chunk_weights_hash(chunk.model, chunk.chunk)
						.expect("genesis expert serves an unknown chunk");
					Pallet::<T>::do_serve_chunk(
						&expert.account,
						chunk.model,
						chunk.chunk,
						hash,
						chunk.format,
					)
					.expect("genesis expert cannot serve its chunk");
				}
			}
		}
	}

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// An account became an expert with this bond.
		ExpertRegistered { expert: T::AccountId, bond: BalanceOf<T> },
		/// An expert changed its profile.
		ProfileUpdated { expert: T::AccountId },
		/// An expert serves a chunk.
		ChunkServed {
			expert: T::AccountId,
			model: ModelId,
			chunk: ChunkIndex,
			format: NumericFormat,
		},
		/// An expert stopped serving a chunk.
		ChunkDropped { expert: T::AccountId, model: ModelId, chunk: ChunkIndex },
		/// An expert added to its bond.
		Bonded { expert: T::AccountId, amount: BalanceOf<T> },
		/// Stake started unbonding; it can be withdrawn from block `unlock_at`.
		Unbonded { who: T::AccountId, amount: BalanceOf<T>, unlock_at: BlockNumberFor<T> },
		/// Unbonded stake was released to its owner.
		Withdrawn { who: T::AccountId, amount: BalanceOf<T> },
		/// An expert left; its bond and its delegations are unbonding.
		ExpertDeregistered { expert: T::AccountId },
		/// Stake was delegated to an expert.
		Delegated { delegator: T::AccountId, expert: T::AccountId, amount: BalanceOf<T> },
		/// Delegated stake started unbonding.
		Undelegated { delegator: T::AccountId, expert: T::AccountId, amount: BalanceOf<T> },
		/// An expert was paid: `commission` to itself, `to_stake` over its bond and
		/// delegations.
		ExpertPaid { expert: T::AccountId, commission: BalanceOf<T>, to_stake: BalanceOf<T> },
		/// An expert was slashed; the amounts went to the community fund.
		ExpertSlashed {
			expert: T::AccountId,
			from_bond: BalanceOf<T>,
			from_delegations: BalanceOf<T>,
		},
		/// Root changed the unbonding period.
		UnbondingPeriodSet { blocks: BlockNumberFor<T> },
		/// An expert named the key that signs its duties (`None`: only its own key does
		/// from now on).
		OperatorSet { expert: T::AccountId, operator: Option<T::AccountId> },
	}

	#[pallet::error]
	pub enum Error<T> {
		/// The account is already an expert.
		AlreadyRegistered,
		/// The account is not an expert.
		NotAnExpert,
		/// The bond would be below `MinExpertBond`.
		BondBelowMinimum,
		/// Nothing to do with a zero amount.
		ZeroAmount,
		/// The account cannot hold that much (free balance too low).
		InsufficientBalance,
		/// Unbonding more than is bonded.
		InsufficientBond,
		/// The commission is above `MaxCommission`.
		CommissionTooHigh,
		/// An expert must take at least one task at a time.
		ZeroCapacity,
		/// More domains than `MaxDomains`.
		TooManyDomains,
		/// A domain tag is empty, too long or listed twice.
		InvalidDomain,
		/// The PeerId is empty or longer than `MaxPeerIdLength`.
		InvalidPeerId,
		/// The model is neither proposed nor active: no new miners.
		ModelNotServable,
		/// The weights hash differs from the registered hash of the chunk.
		WeightsHashMismatch,
		/// The expert already serves this chunk.
		AlreadyServing,
		/// The expert does not serve this chunk.
		NotServing,
		/// The expert serves `MaxChunksServed` chunks already.
		TooManyChunksServed,
		/// `MaxExpertsPerChunk` experts serve this chunk already.
		TooManyExpertsOnChunk,
		/// The model does not accept work computed in this numeric format.
		FormatNotAccepted,
		/// The expert has assigned work (open or disputed tasks): its bond and the stake
		/// delegated to it stay slashable until the work ends.
		HasAssignedWork,
		/// The expert runs `max_concurrent_tasks` tasks already.
		AtCapacity,
		/// `MaxUnbondingChunks` unbondings are pending: withdraw first.
		TooManyUnbondingChunks,
		/// Nothing has finished unbonding.
		NothingToWithdraw,
		/// An expert cannot delegate to itself.
		SelfDelegation,
		/// The delegation would be below `MinDelegation`.
		DelegationBelowMinimum,
		/// `MaxDelegatorsPerExpert` accounts delegate to the expert already.
		TooManyDelegators,
		/// The account does not delegate to this expert.
		NotDelegating,
		/// Undelegating more than is delegated.
		InsufficientDelegation,
		/// An amount overflowed.
		Overflow,
		/// An expert's own key cannot be an operator (of itself or of another expert).
		OperatorIsExpert,
		/// The account is the operator of another expert already.
		OperatorInUse,
		/// The account is an expert's operator: it cannot register as an expert too.
		IsAnOperator,
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		#[cfg(feature = "try-runtime")]
		fn try_state(
			_n: BlockNumberFor<T>,
		) -> Result<(), polkadot_sdk::sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Registers the caller as an expert, holding `bond` (at least `MinExpertBond`)
		/// and the expert deposit.
		#[pallet::call_index(0)]
		#[pallet::weight(T::WeightInfo::register_expert())]
		pub fn register_expert(
			origin: OriginFor<T>,
			bond: BalanceOf<T>,
			domains: Vec<Vec<u8>>,
			peer_id: Vec<u8>,
			price_per_token_layer: BalanceOf<T>,
			max_concurrent_tasks: u32,
			commission: Perbill,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let profile = Self::profile(
				domains,
				peer_id,
				price_per_token_layer,
				max_concurrent_tasks,
				commission,
			)?;
			Self::do_register(&who, bond, profile)
		}

		/// Replaces the caller's profile. A lower capacity than the tasks it runs now only
		/// stops new assignments.
		#[pallet::call_index(1)]
		#[pallet::weight(T::WeightInfo::update_profile())]
		pub fn update_profile(
			origin: OriginFor<T>,
			domains: Vec<Vec<u8>>,
			peer_id: Vec<u8>,
			price_per_token_layer: BalanceOf<T>,
			max_concurrent_tasks: u32,
			commission: Perbill,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let profile = Self::profile(
				domains,
				peer_id,
				price_per_token_layer,
				max_concurrent_tasks,
				commission,
			)?;
			Experts::<T>::try_mutate(&who, |expert| {
				let expert = expert.as_mut().ok_or(Error::<T>::NotAnExpert)?;
				expert.profile = profile;
				Ok::<_, DispatchError>(())
			})?;
			Self::deposit_event(Event::ProfileUpdated { expert: who });
			Ok(())
		}

		/// Starts serving a chunk of a proposed or active model, computed in `format` (one
		/// the model accepts); `weights_hash` must be the registered hash of the chunk.
		/// Holds the chunk deposit.
		#[pallet::call_index(2)]
		#[pallet::weight(T::WeightInfo::serve_chunk())]
		pub fn serve_chunk(
			origin: OriginFor<T>,
			model: ModelId,
			chunk: ChunkIndex,
			weights_hash: H256,
			format: NumericFormat,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_serve_chunk(&who, model, chunk, weights_hash, format)
		}

		/// Stops serving a chunk and releases its deposit.
		#[pallet::call_index(3)]
		#[pallet::weight(T::WeightInfo::stop_serving())]
		pub fn stop_serving(
			origin: OriginFor<T>,
			model: ModelId,
			chunk: ChunkIndex,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut expert = Experts::<T>::get(&who).ok_or(Error::<T>::NotAnExpert)?;
			let position = expert
				.serving
				.iter()
				.position(|c| c.is(model, chunk))
				.ok_or(Error::<T>::NotServing)?;
			expert.serving.remove(position);
			let deposit = T::ChunkDeposit::get().min(expert.deposit);
			T::Currency::release(&HoldReason::Deposit.into(), &who, deposit, Precision::Exact)?;
			expert.deposit.saturating_reduce(deposit);
			Self::remove_server(model, chunk, &who);
			Experts::<T>::insert(&who, expert);
			T::Models::release(model);
			Self::deposit_event(Event::ChunkDropped { expert: who, model, chunk });
			Ok(())
		}

		/// Adds to the caller's bond.
		#[pallet::call_index(4)]
		#[pallet::weight(T::WeightInfo::bond_extra())]
		pub fn bond_extra(origin: OriginFor<T>, amount: BalanceOf<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(!amount.is_zero(), Error::<T>::ZeroAmount);
			let mut expert = Experts::<T>::get(&who).ok_or(Error::<T>::NotAnExpert)?;
			expert.bond = expert.bond.checked_add(&amount).ok_or(Error::<T>::Overflow)?;
			Self::hold(HoldReason::ExpertBond, &who, amount)?;
			Experts::<T>::insert(&who, expert);
			Self::deposit_event(Event::Bonded { expert: who, amount });
			Ok(())
		}

		/// Moves `amount` of the caller's bond into unbonding; what stays must be at least
		/// `MinExpertBond` (leave with `deregister`). Refused while the expert has assigned
		/// work, so that stake cannot leave the reach of a slash for that work.
		#[pallet::call_index(5)]
		#[pallet::weight(T::WeightInfo::unbond())]
		pub fn unbond(origin: OriginFor<T>, amount: BalanceOf<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(!amount.is_zero(), Error::<T>::ZeroAmount);
			let mut expert = Experts::<T>::get(&who).ok_or(Error::<T>::NotAnExpert)?;
			ensure!(expert.active_tasks == 0, Error::<T>::HasAssignedWork);
			let rest = expert.bond.checked_sub(&amount).ok_or(Error::<T>::InsufficientBond)?;
			ensure!(rest >= T::MinExpertBond::get(), Error::<T>::BondBelowMinimum);
			let unlock_at = Self::start_unbonding(&who, HoldReason::ExpertBond, amount, false)?;
			expert.bond = rest;
			Experts::<T>::insert(&who, expert);
			Self::deposit_event(Event::Unbonded { who, amount, unlock_at });
			Ok(())
		}

		/// Releases the caller's stake that has finished unbonding.
		#[pallet::call_index(6)]
		#[pallet::weight(T::WeightInfo::withdraw_unbonded(T::MaxUnbondingChunks::get()))]
		pub fn withdraw_unbonded(origin: OriginFor<T>) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
			let mut queue = Unbonding::<T>::get(&who);
			let pending = queue.len() as u32;
			let mut ready = BalanceOf::<T>::zero();
			queue.retain(|chunk| {
				let matured = chunk.unlock_at <= now;
				if matured {
					ready.saturating_accrue(chunk.amount);
				}
				!matured
			});
			ensure!(!ready.is_zero(), Error::<T>::NothingToWithdraw);
			T::Currency::release(&HoldReason::Unbonding.into(), &who, ready, Precision::Exact)?;
			if queue.is_empty() {
				Unbonding::<T>::remove(&who);
			} else {
				Unbonding::<T>::insert(&who, queue);
			}
			Self::deposit_event(Event::Withdrawn { who, amount: ready });
			Ok(Some(T::WeightInfo::withdraw_unbonded(pending)).into())
		}

		/// Leaves: refused while the expert has assigned work. Its chunks are dropped, its
		/// deposit released, and its bond and every delegation to it start unbonding.
		#[pallet::call_index(7)]
		#[pallet::weight(T::WeightInfo::deregister(
			T::MaxChunksServed::get(),
			T::MaxDelegatorsPerExpert::get(),
		))]
		pub fn deregister(origin: OriginFor<T>) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			let expert = Experts::<T>::get(&who).ok_or(Error::<T>::NotAnExpert)?;
			ensure!(expert.active_tasks == 0, Error::<T>::HasAssignedWork);
			let (chunks, delegators) = (expert.serving.len() as u32, expert.delegators);

			for served in &expert.serving {
				Self::remove_server(served.model, served.chunk, &who);
				T::Models::release(served.model);
			}
			T::Currency::release(
				&HoldReason::Deposit.into(),
				&who,
				expert.deposit,
				Precision::BestEffort,
			)?;
			let unlock_at = Self::start_unbonding(&who, HoldReason::ExpertBond, expert.bond, true)?;
			Self::deposit_event(Event::Unbonded {
				who: who.clone(),
				amount: expert.bond,
				unlock_at,
			});
			for (delegator, amount) in Delegations::<T>::drain_prefix(&who) {
				Self::start_unbonding(&delegator, HoldReason::Delegation, amount, true)?;
				Self::deposit_event(Event::Undelegated { delegator, expert: who.clone(), amount });
			}
			Experts::<T>::remove(&who);
			if Self::clear_operator(&who) {
				Self::deposit_event(Event::OperatorSet { expert: who.clone(), operator: None });
			}
			Self::deposit_event(Event::ExpertDeregistered { expert: who });
			Ok(Some(T::WeightInfo::deregister(chunks, delegators)).into())
		}

		/// Delegates `amount` of the caller's funds to an expert (held as `Delegation`).
		#[pallet::call_index(8)]
		#[pallet::weight(T::WeightInfo::delegate())]
		pub fn delegate(
			origin: OriginFor<T>,
			expert: T::AccountId,
			amount: BalanceOf<T>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(who != expert, Error::<T>::SelfDelegation);
			ensure!(!amount.is_zero(), Error::<T>::ZeroAmount);
			let mut info = Experts::<T>::get(&expert).ok_or(Error::<T>::NotAnExpert)?;
			let current = Delegations::<T>::get(&expert, &who);
			let total =
				current.unwrap_or_default().checked_add(&amount).ok_or(Error::<T>::Overflow)?;
			ensure!(total >= T::MinDelegation::get(), Error::<T>::DelegationBelowMinimum);
			if current.is_none() {
				ensure!(
					info.delegators < T::MaxDelegatorsPerExpert::get(),
					Error::<T>::TooManyDelegators
				);
				info.delegators.saturating_inc();
			}
			info.delegated = info.delegated.checked_add(&amount).ok_or(Error::<T>::Overflow)?;
			Self::hold(HoldReason::Delegation, &who, amount)?;
			Delegations::<T>::insert(&expert, &who, total);
			Experts::<T>::insert(&expert, info);
			Self::deposit_event(Event::Delegated { delegator: who, expert, amount });
			Ok(())
		}

		/// Moves `amount` of the caller's delegation to `expert` into unbonding; what stays
		/// must be zero or at least `MinDelegation`. Refused while the expert has assigned
		/// work (the delegation backs that work and is slashed with it).
		#[pallet::call_index(9)]
		#[pallet::weight(T::WeightInfo::undelegate())]
		pub fn undelegate(
			origin: OriginFor<T>,
			expert: T::AccountId,
			amount: BalanceOf<T>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(!amount.is_zero(), Error::<T>::ZeroAmount);
			let current = Delegations::<T>::get(&expert, &who).ok_or(Error::<T>::NotDelegating)?;
			let rest = current.checked_sub(&amount).ok_or(Error::<T>::InsufficientDelegation)?;
			ensure!(
				rest.is_zero() || rest >= T::MinDelegation::get(),
				Error::<T>::DelegationBelowMinimum
			);
			let mut info = Experts::<T>::get(&expert).ok_or(Error::<T>::NotAnExpert)?;
			ensure!(info.active_tasks == 0, Error::<T>::HasAssignedWork);
			let unlock_at = Self::start_unbonding(&who, HoldReason::Delegation, amount, false)?;
			info.delegated.saturating_reduce(amount);
			if rest.is_zero() {
				info.delegators.saturating_dec();
				Delegations::<T>::remove(&expert, &who);
			} else {
				Delegations::<T>::insert(&expert, &who, rest);
			}
			Experts::<T>::insert(&expert, info);
			Self::deposit_event(Event::Undelegated { delegator: who.clone(), expert, amount });
			Self::deposit_event(Event::Unbonded { who, amount, unlock_at });
			Ok(())
		}

		/// Sets the unbonding period (root). Pending unbondings keep their unlock block.
		#[pallet::call_index(10)]
		#[pallet::weight(T::WeightInfo::set_unbonding_period())]
		pub fn set_unbonding_period(
			origin: OriginFor<T>,
			blocks: BlockNumberFor<T>,
		) -> DispatchResult {
			T::AdminOrigin::ensure_origin(origin)?;
			UnbondingPeriod::<T>::put(blocks);
			Self::deposit_event(Event::UnbondingPeriodSet { blocks });
			Ok(())
		}

		/// Names `operator` as the key that signs the caller's duties as a miner (the
		/// task pallet's commits, reveals and silence claims), or with `None` takes that
		/// right back. The operator's key is the one the miner node holds; it cannot
		/// move the expert's stake or change its profile, so a compromised node loses no
		/// funds except through the slashing of work it signs. A new operator replaces
		/// the old one at once (rotate it after a node is compromised). The operator
		/// cannot be an expert, nor operate another one.
		#[pallet::call_index(11)]
		#[pallet::weight(T::WeightInfo::set_operator())]
		pub fn set_operator(
			origin: OriginFor<T>,
			operator: Option<T::AccountId>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(Experts::<T>::contains_key(&who), Error::<T>::NotAnExpert);
			if let Some(operator) = &operator {
				ensure!(!Experts::<T>::contains_key(operator), Error::<T>::OperatorIsExpert);
				ensure!(
					OperatedExperts::<T>::get(operator).is_none_or(|expert| expert == who),
					Error::<T>::OperatorInUse
				);
			}
			Self::clear_operator(&who);
			if let Some(operator) = &operator {
				Operators::<T>::insert(&who, operator);
				OperatedExperts::<T>::insert(operator, &who);
			}
			Self::deposit_event(Event::OperatorSet { expert: who, operator });
			Ok(())
		}
	}

	impl<T: Config> Pallet<T> {
		/// `part` of `amount`, rounded to the nearest unit as `Perbill`'s `*` rounds.
		// The product is at most `amount`: it cannot overflow.
		#[allow(clippy::arithmetic_side_effects)]
		fn portion(part: Perbill, amount: BalanceOf<T>) -> BalanceOf<T> {
			part * amount
		}

		/// Removes `expert`'s operator, both ways; whether it had one.
		fn clear_operator(expert: &T::AccountId) -> bool {
			match Operators::<T>::take(expert) {
				Some(old) => {
					OperatedExperts::<T>::remove(old);
					true
				}
				None => false,
			}
		}

		/// Checks and bounds a profile from call arguments.
		pub(crate) fn profile(
			domains: Vec<Vec<u8>>,
			peer_id: Vec<u8>,
			price_per_token_layer: BalanceOf<T>,
			max_concurrent_tasks: u32,
			commission: Perbill,
		) -> Result<ExpertProfile<T>, DispatchError> {
			ensure!(commission <= T::MaxCommission::get(), Error::<T>::CommissionTooHigh);
			ensure!(max_concurrent_tasks > 0, Error::<T>::ZeroCapacity);
			ensure!(domains.len() <= T::MaxDomains::get() as usize, Error::<T>::TooManyDomains);
			let mut bounded: Vec<Domain> = Vec::with_capacity(domains.len());
			for domain in domains {
				let domain = Domain::try_from(domain).map_err(|_| Error::<T>::InvalidDomain)?;
				ensure!(
					!domain.is_empty() && !bounded.contains(&domain),
					Error::<T>::InvalidDomain
				);
				bounded.push(domain);
			}
			ensure!(!peer_id.is_empty(), Error::<T>::InvalidPeerId);
			Ok(ExpertProfile {
				domains: BoundedVec::try_from(bounded).map_err(|_| Error::<T>::TooManyDomains)?,
				peer_id: BoundedVec::try_from(peer_id).map_err(|_| Error::<T>::InvalidPeerId)?,
				price_per_token_layer,
				max_concurrent_tasks,
				commission,
			})
		}

		pub(crate) fn do_register(
			who: &T::AccountId,
			bond: BalanceOf<T>,
			profile: ExpertProfile<T>,
		) -> DispatchResult {
			ensure!(!Experts::<T>::contains_key(who), Error::<T>::AlreadyRegistered);
			ensure!(!OperatedExperts::<T>::contains_key(who), Error::<T>::IsAnOperator);
			ensure!(bond >= T::MinExpertBond::get(), Error::<T>::BondBelowMinimum);
			let deposit = T::ExpertDeposit::get();
			let total = bond.checked_add(&deposit).ok_or(Error::<T>::Overflow)?;
			ensure!(
				T::Currency::can_hold(&HoldReason::ExpertBond.into(), who, total),
				Error::<T>::InsufficientBalance
			);
			Self::hold(HoldReason::ExpertBond, who, bond)?;
			Self::hold(HoldReason::Deposit, who, deposit)?;
			Experts::<T>::insert(
				who,
				ExpertInfo {
					bond,
					delegated: Zero::zero(),
					delegators: 0,
					deposit,
					profile,
					serving: BoundedVec::new(),
					active_tasks: 0,
				},
			);
			Self::deposit_event(Event::ExpertRegistered { expert: who.clone(), bond });
			Ok(())
		}

		pub(crate) fn do_serve_chunk(
			who: &T::AccountId,
			model: ModelId,
			chunk: ChunkIndex,
			weights_hash: H256,
			format: NumericFormat,
		) -> DispatchResult {
			let mut expert = Experts::<T>::get(who).ok_or(Error::<T>::NotAnExpert)?;
			let registered = T::Models::chunk_weights_hash(model, chunk)?;
			ensure!(
				T::Models::status(model).is_some_and(ModelStatus::accepts_miners),
				Error::<T>::ModelNotServable
			);
			ensure!(registered == weights_hash, Error::<T>::WeightsHashMismatch);
			ensure!(T::Models::accepts_format(model, format), Error::<T>::FormatNotAccepted);
			ensure!(!expert.serving.iter().any(|c| c.is(model, chunk)), Error::<T>::AlreadyServing);
			expert
				.serving
				.try_push(ServedChunk { model, chunk, format })
				.map_err(|_| Error::<T>::TooManyChunksServed)?;
			let mut servers = ChunkServers::<T>::get(model, chunk);
			servers.try_push(who.clone()).map_err(|_| Error::<T>::TooManyExpertsOnChunk)?;
			let deposit = T::ChunkDeposit::get();
			expert.deposit = expert.deposit.checked_add(&deposit).ok_or(Error::<T>::Overflow)?;
			// Calls are transactional: a failed acquire undoes the hold.
			Self::hold(HoldReason::Deposit, who, deposit)?;
			T::Models::acquire(model)?;
			ChunkServers::<T>::insert(model, chunk, servers);
			Experts::<T>::insert(who, expert);
			Self::deposit_event(Event::ChunkServed { expert: who.clone(), model, chunk, format });
			Ok(())
		}

		fn do_pay(
			expert: &T::AccountId,
			payer: &T::AccountId,
			amount: BalanceOf<T>,
		) -> DispatchResult {
			let info = Experts::<T>::get(expert).ok_or(Error::<T>::NotAnExpert)?;
			let commission = Self::portion(info.profile.commission, amount);
			let to_stake = amount.saturating_sub(commission);
			let stake = info.stake();
			let mut paid_to_delegators = BalanceOf::<T>::zero();
			if !stake.is_zero() {
				for (delegator, delegated) in Delegations::<T>::iter_prefix(expert) {
					let share = Self::portion(Perbill::from_rational(delegated, stake), to_stake);
					if share.is_zero() {
						continue;
					}
					T::Currency::transfer(payer, &delegator, share, Preservation::Expendable)?;
					paid_to_delegators.saturating_accrue(share);
				}
			}
			// The expert gets its commission, its bond's share and the rounding dust.
			let to_expert = amount.saturating_sub(paid_to_delegators);
			T::Currency::transfer(payer, expert, to_expert, Preservation::Expendable)?;
			Self::deposit_event(Event::ExpertPaid { expert: expert.clone(), commission, to_stake });
			Ok(())
		}

		fn remove_server(model: ModelId, chunk: ChunkIndex, who: &T::AccountId) {
			let mut servers = ChunkServers::<T>::get(model, chunk);
			servers.retain(|s| s != who);
			if servers.is_empty() {
				ChunkServers::<T>::remove(model, chunk);
			} else {
				ChunkServers::<T>::insert(model, chunk, servers);
			}
		}

		fn hold(reason: HoldReason, who: &T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
			if amount.is_zero() {
				return Ok(());
			}
			T::Currency::hold(&reason.into(), who, amount)
				.map_err(|_| Error::<T>::InsufficientBalance.into())
		}

		/// Moves `amount` held under `from` into the account's unbonding queue. A user's
		/// own request fails on a full queue; a forced one (deregistration) merges into the
		/// newest entry, which then unlocks at the later block.
		fn start_unbonding(
			who: &T::AccountId,
			from: HoldReason,
			amount: BalanceOf<T>,
			forced: bool,
		) -> Result<BlockNumberFor<T>, DispatchError> {
			let now = polkadot_sdk::frame_system::Pallet::<T>::block_number();
			let unlock_at = now.saturating_add(UnbondingPeriod::<T>::get());
			if amount.is_zero() {
				return Ok(unlock_at);
			}
			let mut queue = Unbonding::<T>::get(who);
			let full = queue.is_full();
			match queue.last_mut() {
				Some(last) if last.unlock_at == unlock_at => last.amount.saturating_accrue(amount),
				Some(last) if forced && full => {
					last.amount.saturating_accrue(amount);
					last.unlock_at = last.unlock_at.max(unlock_at);
				}
				_ => queue
					.try_push(UnbondingChunk { amount, unlock_at })
					.map_err(|_| Error::<T>::TooManyUnbondingChunks)?,
			}
			T::Currency::release(&from.into(), who, amount, Precision::Exact)?;
			T::Currency::hold(&HoldReason::Unbonding.into(), who, amount)?;
			Unbonding::<T>::insert(who, queue);
			Ok(unlock_at)
		}

		/// Takes `fraction` of an amount held under `reason` to the slash destination.
		fn slash_held(
			reason: HoldReason,
			who: &T::AccountId,
			amount: BalanceOf<T>,
			to: &T::AccountId,
		) -> BalanceOf<T> {
			if amount.is_zero() {
				return Zero::zero();
			}
			T::Currency::transfer_on_hold(
				&reason.into(),
				who,
				to,
				amount,
				Precision::BestEffort,
				Restriction::Free,
				Fortitude::Force,
			)
			.unwrap_or_default()
		}

		/// Invariants: for every account, what this pallet holds under each reason equals
		/// what its records say (bond, delegations, unbonding queue, deposits); expert
		/// totals match their delegations; the chunk index matches what experts serve.
		/// Also run by the runtime's tests on its genesis state.
		pub fn do_try_state() -> Result<(), polkadot_sdk::sp_runtime::TryRuntimeError> {
			use alloc::collections::btree_map::BTreeMap;
			let mut expected: BTreeMap<(T::AccountId, u8), BalanceOf<T>> = BTreeMap::new();
			let mut add = |who: &T::AccountId, reason: u8, amount: BalanceOf<T>| {
				expected.entry((who.clone(), reason)).or_default().saturating_accrue(amount);
			};
			for (who, expert) in Experts::<T>::iter() {
				add(&who, 0, expert.bond);
				add(&who, 3, expert.deposit);
				let delegations: Vec<_> = Delegations::<T>::iter_prefix(&who).collect();
				ensure!(
					delegations.len() as u32 == expert.delegators,
					"delegator count differs from delegations"
				);
				let sum = delegations
					.iter()
					.fold(BalanceOf::<T>::zero(), |sum, (_, amount)| sum.saturating_add(*amount));
				ensure!(sum == expert.delegated, "delegated total differs from delegations");
				let deposit = T::ExpertDeposit::get().saturating_add(
					T::ChunkDeposit::get().saturating_mul((expert.serving.len() as u32).into()),
				);
				ensure!(expert.deposit == deposit, "deposit differs from profile + chunks");
				for served in &expert.serving {
					ensure!(
						ChunkServers::<T>::get(served.model, served.chunk).contains(&who),
						"served chunk missing from the chunk index"
					);
				}
			}
			for (_, delegator, amount) in Delegations::<T>::iter() {
				add(&delegator, 1, amount);
			}
			for (who, queue) in Unbonding::<T>::iter() {
				for chunk in queue {
					add(&who, 2, chunk.amount);
				}
			}
			for (model, chunk, servers) in ChunkServers::<T>::iter() {
				for server in servers {
					let serves = Experts::<T>::get(&server)
						.is_some_and(|e| e.serving.iter().any(|c| c.is(model, chunk)));
					ensure!(serves, "chunk index names an expert that does not serve it");
				}
			}
			for (expert, operator) in Operators::<T>::iter() {
				ensure!(Experts::<T>::contains_key(&expert), "an operator of no expert");
				ensure!(!Experts::<T>::contains_key(&operator), "an operator is an expert");
				ensure!(
					OperatedExperts::<T>::get(&operator).as_ref() == Some(&expert),
					"operator maps disagree"
				);
			}
			ensure!(
				OperatedExperts::<T>::iter().count() == Operators::<T>::iter().count(),
				"operator maps differ in size"
			);
			let reasons = [
				HoldReason::ExpertBond,
				HoldReason::Delegation,
				HoldReason::Unbonding,
				HoldReason::Deposit,
			];
			let accounts: alloc::collections::BTreeSet<T::AccountId> =
				expected.keys().map(|(who, _)| who.clone()).collect();
			for who in accounts {
				for (index, reason) in reasons.iter().enumerate() {
					let held = T::Currency::balance_on_hold(&(*reason).into(), &who);
					let recorded = expected.get(&(who.clone(), index as u8)).copied();
					ensure!(
						held == recorded.unwrap_or_default(),
						"held balance differs from the recorded stake"
					);
				}
			}
			Ok(())
		}
	}

	impl<T: Config> ExpertRegistry<T::AccountId, BalanceOf<T>> for Pallet<T> {
		fn offers(
			model: ModelId,
			chunk: ChunkIndex,
		) -> Vec<ChunkOffer<T::AccountId, BalanceOf<T>>> {
			ChunkServers::<T>::get(model, chunk)
				.into_iter()
				.filter_map(|expert| {
					let info = Experts::<T>::get(&expert)?;
					let free = info.profile.max_concurrent_tasks.saturating_sub(info.active_tasks);
					let format = info.serving.iter().find(|c| c.is(model, chunk))?.format;
					(free > 0 && info.bond >= T::MinExpertBond::get()).then(|| ChunkOffer {
						price_per_token_layer: info.profile.price_per_token_layer,
						free_capacity: free,
						stake: info.stake(),
						format,
						expert,
					})
				})
				.collect()
		}

		fn pay(
			expert: &T::AccountId,
			payer: &T::AccountId,
			amount: BalanceOf<T>,
		) -> DispatchResult {
			// All transfers or none, also when called outside a transaction.
			polkadot_sdk::frame_support::storage::with_storage_layer(|| {
				Self::do_pay(expert, payer, amount)
			})
		}

		fn slash(expert: &T::AccountId, fraction: Perbill) -> BalanceOf<T> {
			Self::slash_to(expert, fraction, &T::SlashDestination::get())
		}

		fn slash_to(
			expert: &T::AccountId,
			fraction: Perbill,
			beneficiary: &T::AccountId,
		) -> BalanceOf<T> {
			let Some(mut info) = Experts::<T>::get(expert) else { return Zero::zero() };
			let from_bond = Self::slash_held(
				HoldReason::ExpertBond,
				expert,
				Self::portion(fraction, info.bond),
				beneficiary,
			);
			info.bond.saturating_reduce(from_bond);
			let mut from_delegations = BalanceOf::<T>::zero();
			let delegations: Vec<_> = Delegations::<T>::iter_prefix(expert).collect();
			for (delegator, delegated) in delegations {
				let taken = Self::slash_held(
					HoldReason::Delegation,
					&delegator,
					Self::portion(fraction, delegated),
					beneficiary,
				);
				from_delegations.saturating_accrue(taken);
				let rest = delegated.saturating_sub(taken);
				if rest.is_zero() {
					Delegations::<T>::remove(expert, &delegator);
					info.delegators.saturating_dec();
				} else {
					Delegations::<T>::insert(expert, &delegator, rest);
				}
			}
			info.delegated.saturating_reduce(from_delegations);
			Experts::<T>::insert(expert, info);
			Self::deposit_event(Event::ExpertSlashed {
				expert: expert.clone(),
				from_bond,
				from_delegations,
			});
			from_bond.saturating_add(from_delegations)
		}

		fn note_assigned(expert: &T::AccountId) -> DispatchResult {
			Experts::<T>::try_mutate(expert, |info| {
				let info = info.as_mut().ok_or(Error::<T>::NotAnExpert)?;
				ensure!(
					info.active_tasks < info.profile.max_concurrent_tasks,
					Error::<T>::AtCapacity
				);
				info.active_tasks.saturating_inc();
				Ok(())
			})
		}

		fn note_finished(expert: &T::AccountId) {
			Experts::<T>::mutate(expert, |info| {
				if let Some(info) = info {
					info.active_tasks.saturating_dec();
				}
			});
		}

		fn operator(expert: &T::AccountId) -> Option<T::AccountId> {
			Operators::<T>::get(expert)
		}

		fn operated_expert(operator: &T::AccountId) -> Option<T::AccountId> {
			OperatedExperts::<T>::get(operator)
		}

		#[cfg(feature = "runtime-benchmarks")]
		fn register_for_benchmark(
			who: &T::AccountId,
			model: ModelId,
			chunk: ChunkIndex,
			price: BalanceOf<T>,
		) {
			benchmarking::register_for_benchmark::<T>(who, model, chunk, price)
		}
	}
}

/// Registered experts (for pallets that only need to know who is one).
impl<T: Config> polkadot_sdk::frame_support::traits::Contains<T::AccountId> for Pallet<T> {
	fn contains(who: &T::AccountId) -> bool {
		Experts::<T>::contains_key(who)
	}
}
