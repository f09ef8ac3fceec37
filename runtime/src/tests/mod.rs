//! Runtime tests: genesis presets, the DLLM token, fees and the community fund;
//! validators by stake in [`staking`]; a multisig sudo key in [`multisig`].

mod multisig;
mod staking;

use crate::{
	configs::COMMUNITY_FUND_GENESIS, genesis_config_presets, token, AccountId, Balance, Balances,
	BalancesCall, Executive, Header, Runtime, RuntimeCall, RuntimeGenesisConfig, RuntimeOrigin,
	SignedPayload, System, UncheckedExtrinsic,
};
use codec::Encode;
use polkadot_sdk::{
	frame_support::{
		assert_noop, assert_ok, genesis_builder_helper::build_state, traits::fungible::Inspect,
	},
	frame_system, pallet_authorship, pallet_balances, pallet_session, pallet_sudo,
	pallet_transaction_payment, pallet_treasury,
	sp_genesis_builder::{DEV_RUNTIME_PRESET, LOCAL_TESTNET_RUNTIME_PRESET},
	sp_io::TestExternalities,
	sp_keyring::Sr25519Keyring,
	sp_runtime::{
		traits::Header as HeaderT, transaction_validity::TransactionValidityError, DispatchError,
		TokenError,
	},
	*,
};
use serde_json::Value;

/// Applies a JSON patch the way the node's chain-spec builder does: objects merge key by
/// key, anything else replaces.
fn merge(base: &mut Value, patch: Value) {
	match (base, patch) {
		(Value::Object(base), Value::Object(patch)) => {
			for (key, value) in patch {
				merge(base.entry(key).or_insert(Value::Null), value);
			}
		}
		(base, patch) => *base = patch,
	}
}

/// State built from a genesis preset through the runtime's own `GenesisBuilder` code path.
fn ext_from_preset(preset: &str) -> TestExternalities {
	let patch = genesis_config_presets::get_preset(&preset.into()).expect("preset exists");
	ext_from_patch(serde_json::from_slice(&patch).expect("preset is JSON"))
}

/// State built from a genesis patch (a preset's, or `production_genesis`'s) as the node
/// builds it.
fn ext_from_patch(patch: Value) -> TestExternalities {
	let mut config = serde_json::to_value(RuntimeGenesisConfig::default()).expect("serializes");
	merge(&mut config, patch);
	let json = serde_json::to_vec(&config).expect("serializes");
	let mut ext = TestExternalities::new(Default::default());
	ext.execute_with(|| build_state::<RuntimeGenesisConfig>(json).expect("genesis builds"));
	ext.execute_with(|| System::set_block_number(1));
	ext
}

fn account(who: Sr25519Keyring) -> AccountId {
	who.to_account_id()
}

fn free(who: &AccountId) -> Balance {
	pallet_balances::Pallet::<Runtime>::free_balance(who)
}

/// A transaction signed by `who`, as a wallet would build it.
fn signed(who: Sr25519Keyring, call: RuntimeCall) -> UncheckedExtrinsic {
	let nonce = System::account_nonce(account(who));
	let extension = crate::tx_extension(nonce);
	let payload = SignedPayload::new(call.clone(), extension.clone()).expect("valid payload");
	let signature = payload.using_encoded(|bytes| who.sign(bytes));
	UncheckedExtrinsic::new_signed(call, account(who).into(), signature.into(), extension)
}

/// The digest of a block authored in Aura slot `slot`: its author is the validator at
/// `slot % validators`.
fn aura_digest(slot: u64) -> sp_runtime::Digest {
	use polkadot_sdk::sp_consensus_aura::{Slot, AURA_ENGINE_ID};
	sp_runtime::Digest {
		logs: vec![sp_runtime::DigestItem::PreRuntime(AURA_ENGINE_ID, Slot::from(slot).encode())],
	}
}

/// Starts the next block, authored by the first validator, so that transactions can be
/// applied.
fn start_block() {
	let number = System::block_number() + 1;
	let validators = pallet_session::Validators::<Runtime>::get().len() as u64;
	let header = Header::new(
		number,
		Default::default(),
		Default::default(),
		System::parent_hash(),
		aura_digest(number as u64 * validators),
	);
	Executive::initialize_block(&header);
}

#[test]
fn development_preset_builds() {
	ext_from_preset(DEV_RUNTIME_PRESET).execute_with(|| {
		assert_eq!(pallet_aura::Authorities::<Runtime>::get().len(), 1);
		assert_eq!(pallet_grandpa::Pallet::<Runtime>::grandpa_authorities().len(), 1);
		assert_eq!(pallet_sudo::Key::<Runtime>::get(), Some(account(Sr25519Keyring::Alice)));
		for who in Sr25519Keyring::well_known() {
			let total = pallet_balances::Pallet::<Runtime>::total_balance(&who.to_account_id());
			assert_eq!(total, genesis_config_presets::DEV_ENDOWMENT);
		}
		// Alice bonds as the genesis validator.
		assert_eq!(
			free(&account(Sr25519Keyring::Alice)),
			genesis_config_presets::DEV_ENDOWMENT - genesis_config_presets::GENESIS_VALIDATOR_BOND
		);
	});
}

#[test]
fn development_preset_has_the_tiny_model_and_three_experts() {
	use pallet_experts::{ExpertRegistry, NumericFormat, ServedChunk};
	use pallet_models::{ModelRegistry, ModelStatus};
	ext_from_preset(DEV_RUNTIME_PRESET).execute_with(|| {
		let model = pallet_models::Models::<Runtime>::get(0).expect("dev model registered");
		assert_eq!(model.status, ModelStatus::Active);
		assert_eq!(model.spec, genesis_config_presets::dev_model_spec());
		assert_eq!(model.references, 4);
		assert_eq!(crate::Models::chunk_count(0), Some(2));

		let (bob, charlie, dave) = (
			account(Sr25519Keyring::Bob),
			account(Sr25519Keyring::Charlie),
			account(Sr25519Keyring::Dave),
		);
		let served = |who: &AccountId| {
			pallet_experts::Experts::<Runtime>::get(who).expect("expert").serving.into_inner()
		};
		assert_eq!(
			served(&bob),
			vec![ServedChunk { model: 0, chunk: 0, format: NumericFormat::F32 }]
		);
		assert_eq!(
			served(&charlie),
			vec![ServedChunk { model: 0, chunk: 1, format: NumericFormat::F32 }]
		);
		assert_eq!(served(&dave).len(), 2);
		let offers = |chunk| {
			crate::Experts::offers(0, chunk).into_iter().map(|o| o.expert).collect::<Vec<_>>()
		};
		assert_eq!(offers(0), vec![bob.clone(), dave.clone()]);
		assert_eq!(offers(1), vec![charlie.clone(), dave.clone()]);
		let bond = pallet_experts::Experts::<Runtime>::get(&bob).expect("expert").bond;
		assert_eq!(bond, genesis_config_presets::DEV_EXPERT_BOND);
		assert_eq!(
			pallet_experts::UnbondingPeriod::<Runtime>::get(),
			genesis_config_presets::DEV_UNBONDING_PERIOD
		);
		pallet_experts::Pallet::<Runtime>::do_try_state().expect("holds match the records");
		pallet_models::Pallet::<Runtime>::do_try_state().expect("models are valid");

		// Tasks: generated once and verified by prefill, at the genesis experts' ask
		// (redundancy 2 stays configured for the redundant protocol); the payout account
		// exists.
		let quote = crate::Poaw::quote(0, 10, 5).expect("the dev model takes tasks");
		assert_eq!(quote.mode, pallet_poaw::VerificationMode::Prefill);
		assert_eq!(quote.redundancy, 1);
		assert_eq!(quote.price_per_token_layer, genesis_config_presets::DEV_EXPERT_PRICE);
		assert_eq!(pallet_poaw::Redundancy::<Runtime>::get(), 2);
		assert_eq!(
			crate::Balances::free_balance(crate::Poaw::payout_account()),
			crate::token::EXISTENTIAL_DEPOSIT
		);
		pallet_poaw::Pallet::<Runtime>::do_try_state().expect("no escrow at genesis");

		// Reputation: the genesis experts are new, on probation at the prior mean.
		use dllm_primitives::market::{ExpertQuality, NEUTRAL_QUALITY};
		for who in [&bob, &charlie, &dave] {
			assert_eq!(crate::Reputation::quality(who, None), Some(NEUTRAL_QUALITY));
		}
		assert_eq!(pallet_reputation::RaterCount::<Runtime>::get(), 0);
		pallet_reputation::Pallet::<Runtime>::do_try_state().expect("no raters at genesis");
	});
}

/// The dev model's registered hashes are those of the model `dllm-infer make-tiny` writes.
#[test]
fn dev_model_hashes_match_the_inference_generator() {
	use dllm_inference::{
		tiny::{write_tiny_model, TinySpec},
		weight_hash::{chunk_hash, tokenizer_hash},
		LayerRange, ModelDir,
	};
	use dllm_primitives::dev_model;
	let dir = std::env::temp_dir().join(format!("dllm-dev-model-{}", std::process::id()));
	let spec = TinySpec { seed: dev_model::SEED, ..TinySpec::default() };
	write_tiny_model(&dir, &spec).expect("tiny model written");
	let model = ModelDir::open(&dir).expect("model opens");
	assert_eq!(spec.layers as u32, dev_model::LAYERS);
	assert_eq!(spec.hidden as u32, dev_model::HIDDEN_SIZE);
	assert_eq!(spec.vocab as u32, dev_model::VOCAB_SIZE);
	assert_eq!(spec.max_positions as u32, dev_model::MAX_CONTEXT);
	for (start, end, hash) in dev_model::CHUNKS {
		let range = LayerRange::new(start as usize, end as usize).expect("valid range");
		assert_eq!(chunk_hash(&model, range).expect("hash"), hash, "chunk {start}..{end}");
	}
	assert_eq!(tokenizer_hash(&model).expect("hash"), dev_model::TOKENIZER_HASH);
	let tokenizer = dllm_inference::tokenizer::PromptTokenizer::from_file(
		&dir.join("tokenizer.json"),
		model.config(),
	)
	.expect("tokenizer loads");
	assert_eq!(tokenizer.max_token_bytes().expect("decodes"), dev_model::MAX_TOKEN_BYTES as usize);
	let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn local_testnet_preset_builds_with_two_authorities() {
	ext_from_preset(LOCAL_TESTNET_RUNTIME_PRESET).execute_with(|| {
		assert_eq!(pallet_aura::Authorities::<Runtime>::get().len(), 2);
		assert_eq!(pallet_grandpa::Pallet::<Runtime>::grandpa_authorities().len(), 2);
	});
}

#[test]
fn unknown_preset_is_none() {
	assert!(genesis_config_presets::get_preset(&"mainnet".into()).is_none());
	assert_eq!(genesis_config_presets::preset_names().len(), 2);
}

#[test]
fn token_is_dllm_with_twelve_decimals() {
	assert_eq!(token::SYMBOL, "DLLM");
	assert_eq!(token::DECIMALS, 12);
	ext_from_preset(DEV_RUNTIME_PRESET).execute_with(|| {
		assert_eq!(
			<Runtime as pallet_balances::Config>::ExistentialDeposit::get(),
			token::EXISTENTIAL_DEPOSIT
		);
		assert_eq!(<Runtime as frame_system::Config>::SS58Prefix::get(), 42);
	});
}

/// The fee split (docs/operators.md): a fifth of the fee to the block's author (Alice,
/// the dev chain's validator), the rest to the community fund.
#[test]
fn signed_transfer_pays_a_fifth_of_its_fee_to_the_author_and_the_rest_to_the_fund() {
	ext_from_preset(DEV_RUNTIME_PRESET).execute_with(|| {
		start_block();
		let author = account(Sr25519Keyring::Alice);
		assert_eq!(pallet_authorship::Pallet::<Runtime>::author(), Some(author.clone()));
		let sender = account(Sr25519Keyring::Dave);
		let bob = account(Sr25519Keyring::Bob);
		let fund = crate::community_account();
		let (sender_before, bob_before, fund_before) = (free(&sender), free(&bob), free(&fund));
		let author_before = free(&author);
		assert_eq!(fund_before, COMMUNITY_FUND_GENESIS);

		let amount = 12 * token::UNITS;
		let call = RuntimeCall::Balances(BalancesCall::transfer_keep_alive {
			dest: bob.clone().into(),
			value: amount,
		});
		let xt = signed(Sr25519Keyring::Dave, call);
		let len = xt.encoded_size() as u32;
		let expected_fee =
			pallet_transaction_payment::Pallet::<Runtime>::query_info(xt.clone(), len).partial_fee;
		assert!(expected_fee > 0);

		assert_ok!(Executive::apply_extrinsic(xt).expect("transaction is valid"));

		assert_eq!(free(&bob), bob_before + amount);
		let fee = sender_before - amount - free(&sender);
		assert!(fee > 0, "a transfer charges a fee");
		// The weight reclaim extension may refund a little of the predicted fee.
		assert!(fee <= expected_fee, "fee {fee} above the quoted {expected_fee}");
		let to_author = crate::configs::staking::AUTHOR_FEE_SHARE * fee;
		assert_eq!(to_author, fee / 5);
		assert_eq!(free(&author), author_before + to_author, "a fifth to the author");
		assert_eq!(free(&fund), fund_before + fee - to_author, "the rest to the fund");
		assert_eq!(System::account_nonce(&sender), 1);
	});
}

#[test]
fn transfer_over_balance_fails_and_changes_nothing() {
	ext_from_preset(DEV_RUNTIME_PRESET).execute_with(|| {
		let alice = account(Sr25519Keyring::Alice);
		let bob = account(Sr25519Keyring::Bob);
		assert_noop!(
			Balances::transfer_allow_death(
				RuntimeOrigin::signed(alice.clone()),
				bob.into(),
				free(&alice) + 1
			),
			DispatchError::Token(TokenError::FundsUnavailable)
		);
	});
}

#[test]
fn transaction_that_cannot_pay_its_fee_is_rejected() {
	ext_from_preset(DEV_RUNTIME_PRESET).execute_with(|| {
		start_block();
		// An account that was never endowed cannot pay any fee.
		let poor = Sr25519Keyring::One;
		let call = RuntimeCall::Balances(BalancesCall::transfer_allow_death {
			dest: account(Sr25519Keyring::Bob).into(),
			value: 1,
		});
		let xt = signed(poor, call);
		assert!(matches!(
			Executive::apply_extrinsic(xt),
			Err(TransactionValidityError::Invalid(_))
		));
		assert_eq!(free(&account(poor)), 0);
	});
}

#[test]
fn community_fund_exists_and_receives_funds() {
	ext_from_preset(DEV_RUNTIME_PRESET).execute_with(|| {
		let fund = crate::community_account();
		assert_eq!(
			fund,
			polkadot_sdk::sp_runtime::traits::AccountIdConversion::into_account_truncating(
				&crate::configs::TreasuryPalletId::get()
			)
		);
		assert!(frame_system::Pallet::<Runtime>::account_exists(&fund));
		let before = free(&fund);
		assert_ok!(Balances::transfer_keep_alive(
			RuntimeOrigin::signed(account(Sr25519Keyring::Charlie)),
			fund.clone().into(),
			5 * token::UNITS
		));
		assert_eq!(free(&fund), before + 5 * token::UNITS);
		assert_eq!(
			pallet_balances::Pallet::<Runtime>::total_issuance(),
			<pallet_balances::Pallet<Runtime> as Inspect<AccountId>>::total_issuance()
		);
		// Spends need root: a signed account cannot spend from the fund.
		assert_noop!(
			pallet_treasury::Pallet::<Runtime>::spend(
				RuntimeOrigin::signed(account(Sr25519Keyring::Charlie)),
				Box::new(()),
				token::UNITS,
				Box::new(account(Sr25519Keyring::Charlie)),
				None
			),
			DispatchError::BadOrigin
		);
	});
}

/// The heaviest `on_initialize` the runtime can charge (the task pallet's deadlines and
/// auctions at their budget, and the reputation rounds at their bound) fits in the
/// quarter of the block that normal transactions leave free, and the budget holds the
/// heaviest deadline beside the heaviest auction (so no task waits forever).
#[test]
fn the_heaviest_block_hooks_fit_beside_a_full_block_of_transactions() {
	use pallet_poaw::WeightInfo as _;
	use pallet_reputation::WeightInfo as _;
	use polkadot_sdk::frame_support::{dispatch::DispatchClass, traits::Get, weights::Weight};
	type Poaw = <Runtime as pallet_poaw::Config>::WeightInfo;
	type Reputation = <Runtime as pallet_reputation::Config>::WeightInfo;
	let aggregations: u32 = <Runtime as pallet_reputation::Config>::MaxAggregationsPerBlock::get();
	let budget: Weight = <Runtime as pallet_poaw::Config>::HooksWeight::get();
	// What the pallet charges a deadline and an auction at their worst (a reveal
	// deadline of a prefill task also compares the sides, or judges a referee round, and
	// may assign the next round).
	let deadline = pallet_poaw::Pallet::<Runtime>::heaviest_deadline();
	let auction = pallet_poaw::Pallet::<Runtime>::heaviest_auction();
	let hooks = budget.saturating_add(Reputation::combine_ratings(aggregations));
	let block = crate::configs::RuntimeBlockWeights::get();
	let normal = block.get(DispatchClass::Normal).max_total.unwrap_or(Weight::zero());
	let room = block.max_block.saturating_sub(normal);
	let ms = |w: Weight| w.ref_time() as f64 / 1e9;
	println!(
		"hooks at their bounds: {:.1} ms (task deadlines and auctions {:.1} ms: the heaviest \
		 deadline {:.2} ms, the heaviest auction {:.2} ms); room beside normal transactions: \
		 {:.1} ms",
		ms(hooks),
		ms(budget),
		ms(deadline),
		ms(auction),
		ms(room),
	);
	assert!(hooks.all_lte(room), "hooks {hooks:?} exceed the room {room:?}");
	let progress = Poaw::hooks_base().saturating_add(deadline).saturating_add(auction);
	assert!(
		progress.all_lte(budget),
		"one deadline and one auction {progress:?} exceed {budget:?}"
	);
}

/// How many task calls a block holds under the weights (docs/benchmarks.md prints these
/// numbers): submissions of the dev model (2 chunks) and of the largest task, the
/// auctions `on_initialize` runs, and the miners' commits and reveals.
#[test]
fn task_calls_per_block_under_the_weights() {
	use pallet_poaw::WeightInfo as _;
	use polkadot_sdk::frame_support::{dispatch::DispatchClass, traits::Get, weights::Weight};
	type Poaw = <Runtime as pallet_poaw::Config>::WeightInfo;
	let slots: u32 = <Runtime as pallet_poaw::Config>::MaxSlots::get();
	let offers: u32 = <Runtime as pallet_poaw::Config>::MaxOffersPerChunk::get();
	let prompt: u32 = <Runtime as pallet_poaw::Config>::MaxPromptBytes::get();
	let fingerprint: u32 = <Runtime as pallet_poaw::Config>::MaxFingerprintBytes::get();
	let tokens: u32 = <Runtime as pallet_poaw::Config>::MaxGeneratedTokens::get();
	let assignments: u32 = <Runtime as pallet_poaw::Config>::MaxAssignmentsPerBlock::get();
	let block = crate::configs::RuntimeBlockWeights::get();
	let normal = block.get(DispatchClass::Normal).max_total.unwrap_or(Weight::zero());
	let per_block = |call: Weight| -> u64 {
		let by_time = normal.ref_time() / call.ref_time().max(1);
		let by_proof = normal.proof_size() / call.proof_size().max(1);
		by_time.min(by_proof)
	};
	let dev_submit = Poaw::submit_task(100, 2, offers);
	let worst_submit = Poaw::submit_task(prompt, slots / 3, offers);
	let commit = Poaw::commit(slots);
	let commit_output = Poaw::commit_output(slots, tokens);
	// The comparison or judgement as the pallet charges it.
	let judgement = pallet_poaw::Pallet::<Runtime>::judgement_weight;
	let reveal = Poaw::reveal(slots, fingerprint).saturating_add(judgement(slots));
	// What a reveal of a dev-model prefill task (2 chunks × 2 pipelines) is refunded to.
	let dev_reveal = Poaw::reveal(4, fingerprint).saturating_add(judgement(4));
	let ms = |w: Weight| w.ref_time() as f64 / 1e9;
	println!(
		"per block: {} dev-model submissions ({:.2} ms), {} of the largest ({:.2} ms); \
		 {} commits ({:.2} ms), {} output commits ({:.2} ms), {} reveals ({:.2} ms), \
		 {} after the refund to a dev-model task's slots ({:.2} ms); \
		 on_initialize assigns at most {} tasks, a dev-model prefill auction costing {:.2} ms",
		per_block(dev_submit),
		ms(dev_submit),
		per_block(worst_submit),
		ms(worst_submit),
		per_block(commit),
		ms(commit),
		per_block(commit_output),
		ms(commit_output),
		per_block(reveal),
		ms(reveal),
		per_block(dev_reveal),
		ms(dev_reveal),
		assignments,
		ms(Poaw::assign_task(2, offers)),
	);
	assert!(per_block(worst_submit) >= 1 && per_block(reveal) >= 1);
}

/// R12 of the 2026-12 review: fees must rise while blocks are congested, so that
/// stuffing blocks gets dearer block by block, and fall back to (never below) the base
/// once the load is gone.
#[test]
fn fees_rise_while_blocks_are_congested_and_fall_back_to_the_base_after() {
	use polkadot_sdk::{
		frame_support::{dispatch::DispatchClass, traits::OnFinalize},
		sp_runtime::FixedPointNumber,
	};
	ext_from_preset(DEV_RUNTIME_PRESET).execute_with(|| {
		let normal = crate::configs::RuntimeBlockWeights::get()
			.get(DispatchClass::Normal)
			.max_total
			.expect("normal transactions have a bound");
		let multiplier = pallet_transaction_payment::NextFeeMultiplier::<Runtime>::get;
		let base = multiplier();
		assert_eq!(base, pallet_transaction_payment::Multiplier::saturating_from_integer(1));
		let block = |number: u32, used: polkadot_sdk::frame_support::weights::Weight| {
			System::set_block_number(number);
			System::set_block_consumed_resources(used, 0);
			<pallet_transaction_payment::Pallet<Runtime> as OnFinalize<u32>>::on_finalize(number);
		};
		// 50 full blocks (5 minutes at 6 s): fees at least double.
		for number in 2..52 {
			block(number, normal);
		}
		let congested = multiplier();
		assert!(
			congested >= pallet_transaction_payment::Multiplier::saturating_from_integer(2),
			"fee multiplier after 50 full blocks: {congested}"
		);
		// Empty blocks bring it down, and never below the base.
		for number in 52..400 {
			block(number, Default::default());
		}
		assert_eq!(multiplier(), base);
	});
}

/// Review L5: every DLLM pallet declares its storage version (the annotation is what
/// makes `in_code_storage_version` a `StorageVersion`, so a pallet without one does not
/// compile here), and a new chain starts at it.
#[test]
fn every_dllm_pallet_declares_a_storage_version_that_genesis_writes() {
	use polkadot_sdk::frame_support::traits::{GetStorageVersion, StorageVersion};
	fn versions<P: GetStorageVersion<InCodeStorageVersion = StorageVersion>>(
	) -> (StorageVersion, StorageVersion) {
		(P::in_code_storage_version(), P::on_chain_storage_version())
	}
	ext_from_preset(DEV_RUNTIME_PRESET).execute_with(|| {
		let pallets = [
			("Models", versions::<crate::Models>(), 0),
			("Experts", versions::<crate::Experts>(), 0),
			("Poaw", versions::<crate::Poaw>(), 2),
			("Reputation", versions::<crate::Reputation>(), 0),
		];
		for (name, (in_code, on_chain), expected) in pallets {
			assert_eq!(in_code, StorageVersion::new(expected), "{name}'s storage version");
			assert_eq!(on_chain, in_code, "{name}: genesis writes the version in the code");
		}
	});
}
