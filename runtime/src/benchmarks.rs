//! The pallets `dllm-node benchmark pallet` measures (with the runtime-benchmarks feature).

pub use crate::{
	Balances, Experts, Models, Poaw, Reputation, Runtime, Sudo, Timestamp, Treasury, Utility,
};
pub use polkadot_sdk::{
	frame_benchmarking::{self, baseline, baseline::Pallet as BaselineBench},
	frame_system_benchmarking::{self, Pallet as SystemBench},
};

impl frame_system_benchmarking::Config for Runtime {}
impl baseline::Config for Runtime {}

frame_benchmarking::define_benchmarks!(
	[frame_benchmarking, BaselineBench::<Runtime>]
	[frame_system, SystemBench::<Runtime>]
	[pallet_balances, Balances]
	[pallet_timestamp, Timestamp]
	[pallet_sudo, Sudo]
	[pallet_utility, Utility]
	[pallet_treasury, Treasury]
	[pallet_models, Models]
	[pallet_experts, Experts]
	[pallet_poaw, Poaw]
	[pallet_reputation, Reputation]
);
