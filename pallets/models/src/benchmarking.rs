//! Benchmarks of the model registry's calls, each in its most expensive case.

use super::*;
use alloc::vec::Vec;
use polkadot_sdk::{
	frame_benchmarking::v2::*,
	sp_runtime::traits::{BlakeTwo256, Hash},
};

/// A valid model of `chunks` one-layer chunks (at least one), with the longest name and
/// the most domains `T` allows; `salt` makes its hashes distinct.
pub fn model_spec<T: Config>(chunks: u32, salt: u32) -> ModelSpecOf<T> {
	let chunks = chunks.clamp(1, T::MaxChunks::get());
	let hash = |i: u32| H256::from(BlakeTwo256::hash_of(&(salt, i)).0);
	let name = alloc::vec![b'm'; T::MaxNameLength::get() as usize];
	let domains: Vec<Domain> = (0..T::MaxDomains::get())
		.map(|i| {
			let mut tag = alloc::vec![b'd'; dllm_primitives::market::MAX_DOMAIN_LEN as usize - 4];
			tag.extend_from_slice(&i.to_le_bytes());
			Domain::truncate_from(tag)
		})
		.collect();
	ModelSpec {
		name: BoundedVec::truncate_from(name),
		version: 1,
		architecture: Architecture::Mistral,
		num_layers: chunks,
		hidden_size: 4096,
		vocab_size: 32_000,
		max_context: u32::MAX,
		// One byte per token: the task pallet's benchmarks submit `MaxGeneratedTokens`.
		max_token_bytes: 1,
		chunks: BoundedVec::truncate_from(
			(0..chunks)
				.map(|i| ChunkSpec { start_layer: i, end_layer: i + 1, weights_hash: hash(i) })
				.collect(),
		),
		tokenizer_hash: hash(u32::MAX),
		config_hash: hash(u32::MAX - 1),
		// Every format: the largest entry.
		numerics: BoundedVec::truncate_from(alloc::vec![
			NumericProfile { format: NumericFormat::F32, verification: VerificationParams::F32 },
			NumericProfile { format: NumericFormat::F16, verification: VerificationParams::F16 },
			NumericProfile { format: NumericFormat::Bf16, verification: VerificationParams::BF16 },
		]),
		domains: BoundedVec::truncate_from(domains),
	}
}

fn registered<T: Config>(status: ModelStatus) -> ModelId {
	let model = Pallet::<T>::insert_model(model_spec::<T>(T::MaxChunks::get(), 0))
		.expect("benchmark model is valid");
	Models::<T>::mutate(model, |info| {
		if let Some(info) = info {
			info.status = status;
		}
	});
	model
}

#[benchmarks]
mod benchmarks {
	use super::*;

	#[benchmark]
	fn register_model() -> Result<(), BenchmarkError> {
		let origin =
			T::RegistrarOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
		let spec = model_spec::<T>(T::MaxChunks::get(), 1);
		#[extrinsic_call]
		_(origin as T::RuntimeOrigin, spec);
		assert!(Models::<T>::contains_key(NextModelId::<T>::get() - 1));
		Ok(())
	}

	#[benchmark]
	fn activate_model() -> Result<(), BenchmarkError> {
		let origin =
			T::RegistrarOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
		let model = registered::<T>(ModelStatus::Proposed);
		#[extrinsic_call]
		_(origin as T::RuntimeOrigin, model);
		assert_eq!(Models::<T>::get(model).map(|m| m.status), Some(ModelStatus::Active));
		Ok(())
	}

	#[benchmark]
	fn deprecate_model() -> Result<(), BenchmarkError> {
		let origin =
			T::RegistrarOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
		let model = registered::<T>(ModelStatus::Active);
		let successor = registered::<T>(ModelStatus::Active);
		#[extrinsic_call]
		_(origin as T::RuntimeOrigin, model, Some(successor));
		assert_eq!(Models::<T>::get(model).map(|m| m.status), Some(ModelStatus::Deprecated));
		Ok(())
	}

	/// Retiring a model nothing refers to also removes it: the costlier path.
	#[benchmark]
	fn retire_model() -> Result<(), BenchmarkError> {
		let origin =
			T::RegistrarOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
		let model = registered::<T>(ModelStatus::Deprecated);
		#[extrinsic_call]
		_(origin as T::RuntimeOrigin, model);
		assert!(!Models::<T>::contains_key(model));
		Ok(())
	}

	impl_benchmark_test_suite!(Pallet, crate::mock::new_test_ext(), crate::mock::Test);
}
