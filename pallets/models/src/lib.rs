//! # Model registry
//!
//! The models DLLM serves: each one's shape, its chunking into contiguous layer ranges
//! with the weight hash of every chunk (as `dllm-infer hash-chunks` computes it), the hash
//! of its tokenizer, the domains it was fine-tuned for, and its life:
//! `Proposed → Active → Deprecated → Retired`, with an optional successor named when it is
//! deprecated (the model version upgrade path).
//!
//! Only `Active` models take new tasks; miners may start serving `Proposed` and `Active`
//! ones; `Deprecated` ones finish what runs. Other pallets take a reference on a model
//! while they use it (a served chunk, a task); a `Retired` model is removed from storage
//! as soon as no reference is left.
//!
//! Registration and lifecycle changes come from `RegistrarOrigin` (root for now).

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

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
pub use dllm_fingerprint::VerificationParams;
pub use dllm_primitives::market::{
	ChunkIndex, Domain, ModelId, ModelLimits, ModelRegistry, ModelStatus, NumericFormat,
};
use polkadot_sdk::{
	frame_support::{
		pallet_prelude::*, traits::ConstU32, BoundedVec, CloneNoBound, DebugNoBound, EqNoBound,
		PartialEqNoBound,
	},
	sp_core::H256,
};
use scale_info::TypeInfo;
pub use weights::WeightInfo;

/// Network architectures the inference engine runs.
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
pub enum Architecture {
	/// Mistral (GQA, RoPE, sliding-window attention), as `MistralForCausalLM`.
	Mistral,
}

/// One chunk of a model: layers `[start_layer, end_layer)` and the hash of their weights.
#[derive(
	Clone,
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
pub struct ChunkSpec {
	/// First layer of the chunk.
	pub start_layer: u32,
	/// One past the last layer of the chunk.
	pub end_layer: u32,
	/// SHA-256 of the chunk's tensors (`dllm-infer hash-chunks`); the first chunk's hash
	/// covers the embeddings, the last one's the final norm and `lm_head`.
	pub weights_hash: H256,
}

/// Most numeric formats one model accepts (f32, f16, bf16).
pub const MAX_FORMATS: u32 = 3;

/// A numeric format a model accepts, and how work in it is verified.
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
pub struct NumericProfile {
	/// The format miners may compute in.
	pub format: NumericFormat,
	/// Fingerprint parameters and tolerances for comparing work of this format (or of a
	/// tighter one) with any other work: docs/verification.md calibrates one profile
	/// per format.
	pub verification: VerificationParams,
}

/// What the registrar submits to register a model.
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
#[codec(mel_bound())]
#[scale_info(skip_type_params(NameLen, MaxChunks, MaxDomains))]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub struct ModelSpec<NameLen: Get<u32>, MaxChunks: Get<u32>, MaxDomains: Get<u32>> {
	/// Human-readable name, e.g. `mistral-7b-instruct`.
	pub name: BoundedVec<u8, NameLen>,
	/// Version of the weights under this name.
	pub version: u32,
	/// Network architecture.
	pub architecture: Architecture,
	/// Decoder layers.
	pub num_layers: u32,
	/// Residual width.
	pub hidden_size: u32,
	/// Vocabulary size.
	pub vocab_size: u32,
	/// Longest context (prompt plus output) in tokens.
	pub max_context: u32,
	/// Most bytes one generated token adds to the decoded text: the tokenizer's longest
	/// piece, and at least 3 where byte fallback can decode a token to U+FFFD. The task
	/// pallet refuses a `max_tokens` whose text could exceed its output bound.
	pub max_token_bytes: u32,
	/// The chunking: contiguous layer ranges covering `[0, num_layers)` in order.
	pub chunks: BoundedVec<ChunkSpec, MaxChunks>,
	/// SHA-256 of the `tokenizer.json` file.
	pub tokenizer_hash: H256,
	/// SHA-256 of the config fields the inference engine reads (heads, head size, RoPE
	/// base, norm epsilon, sliding window, special tokens, …), as `dllm-infer hash-chunks`
	/// prints it: miners run exactly this architecture.
	pub config_hash: H256,
	/// The formats miners may compute in, each with its verification parameters; every
	/// profile takes fingerprints the same way.
	pub numerics: BoundedVec<NumericProfile, ConstU32<MAX_FORMATS>>,
	/// Domains of a fine-tuned expert model; empty for a general one.
	pub domains: BoundedVec<Domain, MaxDomains>,
}

/// The registrar's submission, with this runtime's bounds.
pub type ModelSpecOf<T> =
	ModelSpec<<T as Config>::MaxNameLength, <T as Config>::MaxChunks, <T as Config>::MaxDomains>;

/// A registered model.
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
pub struct ModelInfo<T: Config> {
	/// What was registered.
	pub spec: ModelSpecOf<T>,
	/// Where the model stands.
	pub status: ModelStatus,
	/// The model that replaces this one, named when it is deprecated.
	pub successor: Option<ModelId>,
	/// Served chunks and tasks that use the model.
	pub references: u32,
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

	#[pallet::config]
	pub trait Config: polkadot_sdk::frame_system::Config<RuntimeEvent: From<Event<Self>>> {
		/// Who registers models and moves them through their lifecycle.
		type RegistrarOrigin: EnsureOrigin<Self::RuntimeOrigin>;
		/// Longest model name, in bytes.
		#[pallet::constant]
		type MaxNameLength: Get<u32>;
		/// Most chunks a model may be split into.
		#[pallet::constant]
		type MaxChunks: Get<u32>;
		/// Most domain tags of a model.
		#[pallet::constant]
		type MaxDomains: Get<u32>;
		/// Weights of this pallet's calls.
		type WeightInfo: WeightInfo;
	}

	/// The id the next registered model gets.
	#[pallet::storage]
	pub type NextModelId<T> = StorageValue<_, ModelId, ValueQuery>;

	/// Registered models.
	#[pallet::storage]
	pub type Models<T: Config> = StorageMap<_, Twox64Concat, ModelId, ModelInfo<T>>;

	#[pallet::genesis_config]
	#[derive(polkadot_sdk::frame_support::DefaultNoBound)]
	pub struct GenesisConfig<T: Config> {
		/// Models registered and activated at genesis, with ids 0, 1, …
		pub models: alloc::vec::Vec<ModelSpecOf<T>>,
	}

	#[pallet::genesis_build]
	impl<T: Config> BuildGenesisConfig for GenesisConfig<T> {
		fn build(&self) {
			for spec in &self.models {
				// Genesis is built off chain: a bad preset is a bug to stop on at once.
				let id = Pallet::<T>::insert_model(spec.clone())
					.unwrap_or_else(|e| panic!("genesis model {:?} is invalid: {e:?}", spec.name));
				Models::<T>::mutate(id, |model| {
					if let Some(model) = model {
						model.status = ModelStatus::Active;
					}
				});
			}
		}
	}

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// A model was registered (status `Proposed`).
		ModelRegistered { model: ModelId, name: BoundedVec<u8, T::MaxNameLength>, version: u32 },
		/// A model takes tasks.
		ModelActivated { model: ModelId },
		/// A model takes no new work; `successor` replaces it.
		ModelDeprecated { model: ModelId, successor: Option<ModelId> },
		/// A model is out of use.
		ModelRetired { model: ModelId },
		/// A retired model with nothing referring to it left storage.
		ModelRemoved { model: ModelId },
	}

	#[pallet::error]
	pub enum Error<T> {
		/// No model with this id.
		UnknownModel,
		/// The model has no chunk with this index.
		UnknownChunk,
		/// The model name is empty.
		EmptyName,
		/// Layers, hidden size, vocabulary, context and bytes per token must all be above
		/// zero.
		InvalidShape,
		/// No numeric format, a format twice, invalid fingerprint parameters, or
		/// profiles that take fingerprints differently.
		InvalidNumerics,
		/// Chunks must be non-empty layer ranges that cover `[0, num_layers)` in order.
		InvalidChunking,
		/// A model needs at least one chunk.
		NoChunks,
		/// A domain tag is empty or listed twice.
		InvalidDomain,
		/// Model ids are exhausted.
		ModelIdOverflow,
		/// Only a `Proposed` model can be activated.
		NotProposed,
		/// Only an `Active` model can be deprecated.
		NotActive,
		/// Only a `Deprecated` model can be retired.
		NotDeprecated,
		/// The successor must be another registered model that is `Proposed` or `Active`.
		InvalidSuccessor,
		/// The model is retired: nothing new may refer to it.
		ModelRetired,
		/// The model has too many references.
		TooManyReferences,
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
		/// Registers a model as `Proposed`. Its chunks must cover its layers in order.
		#[pallet::call_index(0)]
		#[pallet::weight(T::WeightInfo::register_model())]
		pub fn register_model(origin: OriginFor<T>, spec: ModelSpecOf<T>) -> DispatchResult {
			T::RegistrarOrigin::ensure_origin(origin)?;
			let (name, version) = (spec.name.clone(), spec.version);
			let model = Self::insert_model(spec)?;
			Self::deposit_event(Event::ModelRegistered { model, name, version });
			Ok(())
		}

		/// `Proposed → Active`: the model takes tasks.
		#[pallet::call_index(1)]
		#[pallet::weight(T::WeightInfo::activate_model())]
		pub fn activate_model(origin: OriginFor<T>, model: ModelId) -> DispatchResult {
			T::RegistrarOrigin::ensure_origin(origin)?;
			Models::<T>::try_mutate(model, |info| {
				let info = info.as_mut().ok_or(Error::<T>::UnknownModel)?;
				ensure!(info.status == ModelStatus::Proposed, Error::<T>::NotProposed);
				info.status = ModelStatus::Active;
				Ok::<_, DispatchError>(())
			})?;
			Self::deposit_event(Event::ModelActivated { model });
			Ok(())
		}

		/// `Active → Deprecated`, naming the model that replaces it, if any.
		#[pallet::call_index(2)]
		#[pallet::weight(T::WeightInfo::deprecate_model())]
		pub fn deprecate_model(
			origin: OriginFor<T>,
			model: ModelId,
			successor: Option<ModelId>,
		) -> DispatchResult {
			T::RegistrarOrigin::ensure_origin(origin)?;
			if let Some(next) = successor {
				let next_status = Models::<T>::get(next).map(|m| m.status);
				ensure!(
					next != model && next_status.is_some_and(ModelStatus::accepts_miners),
					Error::<T>::InvalidSuccessor
				);
			}
			Models::<T>::try_mutate(model, |info| {
				let info = info.as_mut().ok_or(Error::<T>::UnknownModel)?;
				ensure!(info.status == ModelStatus::Active, Error::<T>::NotActive);
				info.status = ModelStatus::Deprecated;
				info.successor = successor;
				Ok::<_, DispatchError>(())
			})?;
			Self::deposit_event(Event::ModelDeprecated { model, successor });
			Ok(())
		}

		/// `Deprecated → Retired`; the model leaves storage now if nothing refers to it,
		/// otherwise when its last reference ends.
		#[pallet::call_index(3)]
		#[pallet::weight(T::WeightInfo::retire_model())]
		pub fn retire_model(origin: OriginFor<T>, model: ModelId) -> DispatchResult {
			T::RegistrarOrigin::ensure_origin(origin)?;
			let references = Models::<T>::try_mutate(model, |info| {
				let info = info.as_mut().ok_or(Error::<T>::UnknownModel)?;
				ensure!(info.status == ModelStatus::Deprecated, Error::<T>::NotDeprecated);
				info.status = ModelStatus::Retired;
				Ok::<_, DispatchError>(info.references)
			})?;
			Self::deposit_event(Event::ModelRetired { model });
			if references == 0 {
				Self::remove(model);
			}
			Ok(())
		}
	}

	impl<T: Config> Pallet<T> {
		/// Checks a submission and stores it as a `Proposed` model under a new id.
		pub(crate) fn insert_model(spec: ModelSpecOf<T>) -> Result<ModelId, DispatchError> {
			Self::validate(&spec)?;
			let model = NextModelId::<T>::get();
			let next = model.checked_add(1).ok_or(Error::<T>::ModelIdOverflow)?;
			Models::<T>::insert(
				model,
				ModelInfo { spec, status: ModelStatus::Proposed, successor: None, references: 0 },
			);
			NextModelId::<T>::put(next);
			Ok(model)
		}

		fn validate(spec: &ModelSpecOf<T>) -> DispatchResult {
			ensure!(!spec.name.is_empty(), Error::<T>::EmptyName);
			ensure!(
				spec.num_layers > 0
					&& spec.hidden_size > 0
					&& spec.vocab_size > 0
					&& spec.max_context > 0
					&& spec.max_token_bytes > 0,
				Error::<T>::InvalidShape
			);
			ensure!(!spec.chunks.is_empty(), Error::<T>::NoChunks);
			let mut next_layer = 0u32;
			for chunk in &spec.chunks {
				ensure!(
					chunk.start_layer == next_layer && chunk.end_layer > chunk.start_layer,
					Error::<T>::InvalidChunking
				);
				next_layer = chunk.end_layer;
			}
			ensure!(next_layer == spec.num_layers, Error::<T>::InvalidChunking);
			let fingerprint = spec.numerics.first().map(|p| p.verification.fingerprint);
			ensure!(fingerprint.is_some(), Error::<T>::InvalidNumerics);
			for (i, profile) in spec.numerics.iter().enumerate() {
				ensure!(
					profile.verification.fingerprint.validate().is_ok()
						&& Some(profile.verification.fingerprint) == fingerprint
						&& !spec.numerics.iter().take(i).any(|p| p.format == profile.format),
					Error::<T>::InvalidNumerics
				);
			}
			for (i, domain) in spec.domains.iter().enumerate() {
				ensure!(
					!domain.is_empty() && !spec.domains.iter().take(i).any(|d| d == domain),
					Error::<T>::InvalidDomain
				);
			}
			Ok(())
		}

		fn remove(model: ModelId) {
			Models::<T>::remove(model);
			Self::deposit_event(Event::ModelRemoved { model });
		}

		/// Invariants: every stored model has a valid chunking and an id below
		/// `NextModelId`; a retired model is kept only while something refers to it.
		/// Also run by the runtime's tests on its genesis state.
		pub fn do_try_state() -> Result<(), polkadot_sdk::sp_runtime::TryRuntimeError> {
			let next = NextModelId::<T>::get();
			for (id, info) in Models::<T>::iter() {
				ensure!(id < next, "model id at or above NextModelId");
				ensure!(Self::validate(&info.spec).is_ok(), "stored model fails validation");
				ensure!(
					info.status != ModelStatus::Retired || info.references > 0,
					"retired model without references still stored"
				);
			}
			Ok(())
		}
	}

	impl<T: Config> ModelRegistry for Pallet<T> {
		fn status(model: ModelId) -> Option<ModelStatus> {
			Models::<T>::get(model).map(|info| info.status)
		}

		fn chunk_count(model: ModelId) -> Option<u32> {
			Models::<T>::get(model).map(|info| info.spec.chunks.len() as u32)
		}

		fn chunk_weights_hash(model: ModelId, chunk: ChunkIndex) -> Result<H256, DispatchError> {
			let info = Models::<T>::get(model).ok_or(Error::<T>::UnknownModel)?;
			let chunk = info.spec.chunks.get(chunk as usize).ok_or(Error::<T>::UnknownChunk)?;
			Ok(chunk.weights_hash)
		}

		fn chunk_layers(model: ModelId) -> Option<alloc::vec::Vec<u32>> {
			Models::<T>::get(model).map(|info| {
				info.spec
					.chunks
					.iter()
					.map(|chunk| chunk.end_layer.saturating_sub(chunk.start_layer))
					.collect()
			})
		}

		fn limits(model: ModelId) -> Option<ModelLimits> {
			Models::<T>::get(model).map(|info| ModelLimits {
				max_context: info.spec.max_context,
				max_token_bytes: info.spec.max_token_bytes,
			})
		}

		fn accepts_format(model: ModelId, format: NumericFormat) -> bool {
			Models::<T>::get(model)
				.is_some_and(|info| info.spec.numerics.iter().any(|p| p.format == format))
		}

		fn verification(model: ModelId, format: NumericFormat) -> Option<VerificationParams> {
			Models::<T>::get(model).and_then(|info| {
				info.spec.numerics.iter().find(|p| p.format == format).map(|p| p.verification)
			})
		}

		fn acquire(model: ModelId) -> DispatchResult {
			Models::<T>::try_mutate(model, |info| {
				let info = info.as_mut().ok_or(Error::<T>::UnknownModel)?;
				ensure!(info.status != ModelStatus::Retired, Error::<T>::ModelRetired);
				info.references =
					info.references.checked_add(1).ok_or(Error::<T>::TooManyReferences)?;
				Ok(())
			})
		}

		fn release(model: ModelId) {
			let removable = Models::<T>::mutate(model, |info| match info {
				Some(info) => {
					info.references = info.references.saturating_sub(1);
					info.references == 0 && info.status == ModelStatus::Retired
				}
				None => false,
			});
			if removable {
				Self::remove(model);
			}
		}

		#[cfg(feature = "runtime-benchmarks")]
		fn register_for_benchmark(chunks: u32) -> ModelId {
			let spec = benchmarking::model_spec::<T>(chunks, 0);
			let model = Self::insert_model(spec).unwrap_or_default();
			Models::<T>::mutate(model, |info| {
				if let Some(info) = info {
					info.status = ModelStatus::Active;
				}
			});
			model
		}
	}
}
