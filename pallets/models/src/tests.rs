//! Every call's success path and every error, with state unchanged on failure.

use crate::mock::Models;
use crate::{mock::*, *};
use polkadot_sdk::{
	frame_support::{assert_noop, assert_ok},
	frame_system::RawOrigin,
	sp_runtime::{BuildStorage, DispatchError},
};

fn hash(n: u8) -> H256 {
	H256::repeat_byte(n)
}

fn chunk(start: u32, end: u32, n: u8) -> ChunkSpec {
	ChunkSpec { start_layer: start, end_layer: end, weights_hash: hash(n) }
}

/// A 4-layer model in two chunks.
fn spec() -> ModelSpecOf<Test> {
	ModelSpec {
		name: BoundedVec::truncate_from(b"tiny-mistral".to_vec()),
		version: 1,
		architecture: Architecture::Mistral,
		num_layers: 4,
		hidden_size: 64,
		vocab_size: 320,
		max_context: 512,
		max_token_bytes: 4,
		chunks: BoundedVec::truncate_from(vec![chunk(0, 2, 1), chunk(2, 4, 2)]),
		tokenizer_hash: hash(9),
		config_hash: hash(10),
		numerics: BoundedVec::truncate_from(vec![NumericProfile {
			format: NumericFormat::F32,
			verification: VerificationParams::F32,
		}]),
		domains: BoundedVec::truncate_from(vec![Domain::truncate_from(b"code".to_vec())]),
	}
}

fn profile(format: NumericFormat) -> NumericProfile {
	NumericProfile { format, verification: VerificationParams::F32 }
}

fn register() -> ModelId {
	let id = NextModelId::<Test>::get();
	assert_ok!(Models::register_model(RawOrigin::Root.into(), spec()));
	id
}

fn status(model: ModelId) -> Option<ModelStatus> {
	<Pallet<Test> as ModelRegistry>::status(model)
}

#[test]
fn register_stores_a_proposed_model() {
	new_test_ext().execute_with(|| {
		let model = register();
		assert_eq!(model, 0);
		assert_eq!(NextModelId::<Test>::get(), 1);
		let info = crate::Models::<Test>::get(model).unwrap();
		assert_eq!(info.status, ModelStatus::Proposed);
		assert_eq!(info.spec, spec());
		System::assert_last_event(
			Event::ModelRegistered { model, name: spec().name, version: 1 }.into(),
		);
		assert_eq!(Pallet::<Test>::chunk_count(model), Some(2));
		assert_eq!(Pallet::<Test>::chunk_weights_hash(model, 1), Ok(hash(2)));
		Pallet::<Test>::do_try_state().unwrap();
	});
}

#[test]
fn register_needs_the_registrar() {
	new_test_ext().execute_with(|| {
		assert_noop!(
			Models::register_model(RawOrigin::Signed(1).into(), spec()),
			DispatchError::BadOrigin
		);
	});
}

#[test]
fn register_refuses_bad_specs() {
	new_test_ext().execute_with(|| {
		let cases: Vec<(ModelSpecOf<Test>, Error<Test>)> = vec![
			(ModelSpec { name: Default::default(), ..spec() }, Error::EmptyName),
			(ModelSpec { num_layers: 0, ..spec() }, Error::InvalidShape),
			(ModelSpec { hidden_size: 0, ..spec() }, Error::InvalidShape),
			(ModelSpec { vocab_size: 0, ..spec() }, Error::InvalidShape),
			(ModelSpec { max_context: 0, ..spec() }, Error::InvalidShape),
			(ModelSpec { max_token_bytes: 0, ..spec() }, Error::InvalidShape),
			// No format, one twice, fingerprints taken two ways, bad fingerprint params.
			(ModelSpec { numerics: Default::default(), ..spec() }, Error::InvalidNumerics),
			(
				ModelSpec {
					numerics: BoundedVec::truncate_from(vec![profile(NumericFormat::F32); 2]),
					..spec()
				},
				Error::InvalidNumerics,
			),
			(
				ModelSpec {
					numerics: BoundedVec::truncate_from(vec![profile(NumericFormat::F32), {
						let mut other = profile(NumericFormat::Bf16);
						other.verification.fingerprint.block = 64;
						other
					}]),
					..spec()
				},
				Error::InvalidNumerics,
			),
			(
				ModelSpec {
					numerics: BoundedVec::truncate_from(vec![{
						let mut bad = profile(NumericFormat::F32);
						bad.verification.fingerprint.block = 0;
						bad
					}]),
					..spec()
				},
				Error::InvalidNumerics,
			),
			(ModelSpec { chunks: Default::default(), ..spec() }, Error::NoChunks),
			// A gap, an overlap, an empty chunk, a short and a long cover.
			(
				ModelSpec {
					chunks: BoundedVec::truncate_from(vec![chunk(0, 1, 1), chunk(2, 4, 2)]),
					..spec()
				},
				Error::InvalidChunking,
			),
			(
				ModelSpec {
					chunks: BoundedVec::truncate_from(vec![chunk(0, 3, 1), chunk(2, 4, 2)]),
					..spec()
				},
				Error::InvalidChunking,
			),
			(
				ModelSpec {
					chunks: BoundedVec::truncate_from(vec![chunk(0, 0, 1), chunk(0, 4, 2)]),
					..spec()
				},
				Error::InvalidChunking,
			),
			(
				ModelSpec { chunks: BoundedVec::truncate_from(vec![chunk(0, 2, 1)]), ..spec() },
				Error::InvalidChunking,
			),
			(
				ModelSpec {
					chunks: BoundedVec::truncate_from(vec![chunk(0, 2, 1), chunk(2, 5, 2)]),
					..spec()
				},
				Error::InvalidChunking,
			),
			(
				ModelSpec { domains: BoundedVec::truncate_from(vec![Domain::default()]), ..spec() },
				Error::InvalidDomain,
			),
			(
				ModelSpec {
					domains: BoundedVec::truncate_from(vec![
						Domain::truncate_from(b"law".to_vec()),
						Domain::truncate_from(b"law".to_vec()),
					]),
					..spec()
				},
				Error::InvalidDomain,
			),
		];
		for (bad, error) in cases {
			assert_noop!(Models::register_model(RawOrigin::Root.into(), bad), error);
		}
	});
}

#[test]
fn register_refuses_when_ids_run_out() {
	new_test_ext().execute_with(|| {
		NextModelId::<Test>::put(ModelId::MAX);
		assert_noop!(
			Models::register_model(RawOrigin::Root.into(), spec()),
			Error::<Test>::ModelIdOverflow
		);
	});
}

#[test]
fn lifecycle_runs_proposed_active_deprecated_retired() {
	new_test_ext().execute_with(|| {
		let old = register();
		let new = register();
		assert_ok!(Models::activate_model(RawOrigin::Root.into(), old));
		assert_eq!(status(old), Some(ModelStatus::Active));
		System::assert_last_event(Event::ModelActivated { model: old }.into());

		assert_ok!(Models::deprecate_model(RawOrigin::Root.into(), old, Some(new)));
		assert_eq!(status(old), Some(ModelStatus::Deprecated));
		assert_eq!(crate::Models::<Test>::get(old).unwrap().successor, Some(new));
		System::assert_last_event(
			Event::ModelDeprecated { model: old, successor: Some(new) }.into(),
		);

		assert_ok!(Models::retire_model(RawOrigin::Root.into(), old));
		// Nothing referred to it: gone at once.
		assert_eq!(status(old), None);
		System::assert_has_event(Event::ModelRetired { model: old }.into());
		System::assert_last_event(Event::ModelRemoved { model: old }.into());
		Pallet::<Test>::do_try_state().unwrap();
	});
}

#[test]
fn lifecycle_refuses_wrong_transitions() {
	new_test_ext().execute_with(|| {
		let model = register();
		let root = || RawOrigin::Root.into();
		assert_noop!(Models::deprecate_model(root(), model, None), Error::<Test>::NotActive);
		assert_noop!(Models::retire_model(root(), model), Error::<Test>::NotDeprecated);
		assert_ok!(Models::activate_model(root(), model));
		assert_noop!(Models::activate_model(root(), model), Error::<Test>::NotProposed);
		assert_noop!(Models::activate_model(root(), 7), Error::<Test>::UnknownModel);
		assert_noop!(Models::deprecate_model(root(), 7, None), Error::<Test>::UnknownModel);
		assert_noop!(Models::retire_model(root(), 7), Error::<Test>::UnknownModel);
		assert_noop!(
			Models::activate_model(RawOrigin::Signed(1).into(), model),
			DispatchError::BadOrigin
		);
	});
}

#[test]
fn successor_must_be_another_live_model() {
	new_test_ext().execute_with(|| {
		let root = || RawOrigin::Root.into();
		let model = register();
		assert_ok!(Models::activate_model(root(), model));
		assert_noop!(
			Models::deprecate_model(root(), model, Some(model)),
			Error::<Test>::InvalidSuccessor
		);
		assert_noop!(
			Models::deprecate_model(root(), model, Some(42)),
			Error::<Test>::InvalidSuccessor
		);
		let other = register();
		assert_ok!(Models::activate_model(root(), other));
		assert_ok!(Models::deprecate_model(root(), other, None));
		assert_noop!(
			Models::deprecate_model(root(), model, Some(other)),
			Error::<Test>::InvalidSuccessor
		);
	});
}

#[test]
fn retired_model_stays_until_its_last_reference_ends() {
	new_test_ext().execute_with(|| {
		let root = || RawOrigin::Root.into();
		let model = register();
		assert_ok!(Pallet::<Test>::acquire(model));
		assert_ok!(Pallet::<Test>::acquire(model));
		assert_ok!(Models::activate_model(root(), model));
		assert_ok!(Models::deprecate_model(root(), model, None));
		assert_ok!(Models::retire_model(root(), model));
		assert_eq!(status(model), Some(ModelStatus::Retired));
		assert_noop!(Pallet::<Test>::acquire(model), Error::<Test>::ModelRetired);
		Pallet::<Test>::release(model);
		assert_eq!(status(model), Some(ModelStatus::Retired));
		Pallet::<Test>::release(model);
		assert_eq!(status(model), None);
		System::assert_last_event(Event::ModelRemoved { model }.into());
		Pallet::<Test>::do_try_state().unwrap();
	});
}

#[test]
fn registry_trait_names_unknown_models_and_chunks() {
	new_test_ext().execute_with(|| {
		let model = register();
		assert_eq!(
			Pallet::<Test>::chunk_weights_hash(model, 2),
			Err(Error::<Test>::UnknownChunk.into())
		);
		assert_eq!(
			Pallet::<Test>::chunk_weights_hash(9, 0),
			Err(Error::<Test>::UnknownModel.into())
		);
		assert_eq!(Pallet::<Test>::acquire(9), Err(Error::<Test>::UnknownModel.into()));
		assert_eq!(Pallet::<Test>::chunk_count(9), None);
		// Releasing an unknown model changes nothing.
		Pallet::<Test>::release(9);
	});
}

#[test]
fn genesis_registers_active_models() {
	let mut storage =
		polkadot_sdk::frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	GenesisConfig::<Test> { models: vec![spec(), spec()] }
		.assimilate_storage(&mut storage)
		.unwrap();
	polkadot_sdk::sp_io::TestExternalities::new(storage).execute_with(|| {
		assert_eq!(status(0), Some(ModelStatus::Active));
		assert_eq!(status(1), Some(ModelStatus::Active));
		assert_eq!(NextModelId::<Test>::get(), 2);
	});
}
