//! Runs the command the user asked for.

use crate::{
	chain_spec,
	cli::{Cli, Subcommand},
	service,
};
use dllm_runtime::opaque::Block;
use polkadot_sdk::{
	frame_benchmarking_cli::{BenchmarkCmd, SUBSTRATE_REFERENCE_HARDWARE},
	sc_cli::{self, SubstrateCli},
	sc_consensus_grandpa, sc_network,
	sc_service::PartialComponents,
	sp_runtime,
};
use std::path::PathBuf;

impl SubstrateCli for Cli {
	fn impl_name() -> String {
		"DLLM Node".into()
	}

	fn impl_version() -> String {
		env!("SUBSTRATE_CLI_IMPL_VERSION").into()
	}

	fn description() -> String {
		env!("CARGO_PKG_DESCRIPTION").into()
	}

	fn author() -> String {
		env!("CARGO_PKG_AUTHORS").into()
	}

	fn support_url() -> String {
		"https://github.com/dllm/dllm/issues".into()
	}

	fn copyright_start_year() -> i32 {
		2026
	}

	fn load_spec(&self, id: &str) -> Result<Box<dyn sc_service::ChainSpec>, String> {
		load_spec(id)
	}
}

use polkadot_sdk::sc_service;

/// The built-in specs by name, or a chain spec JSON file.
fn load_spec(id: &str) -> Result<Box<dyn sc_service::ChainSpec>, String> {
	Ok(match id {
		"dev" => Box::new(chain_spec::development_chain_spec()?),
		// Not `local` by default: its sudo key and endowments are public dev keys (D1).
		"" => {
			return Err("no chain given: use `--dev` for a one-node development chain, \
				 `--chain local` for the loopback test network, `--chain` with the path \
				 of a chain spec JSON file, or `build-spec --chain production:FILE` for a \
				 new network's spec"
				.into())
		}
		"local" => Box::new(chain_spec::local_chain_spec()?),
		id if id.starts_with("production:") => {
			let file = id.strip_prefix("production:").unwrap_or_default();
			Box::new(chain_spec::production_chain_spec(std::path::Path::new(file))?)
		}
		path => {
			let path = PathBuf::from(path);
			if !path.is_file() {
				return Err(format!(
					"chain spec file `{}` not found; use `--dev`, `--chain dev`, `--chain local` \
					 or the path of a chain spec JSON file",
					path.display()
				));
			}
			Box::new(
				chain_spec::ChainSpec::from_json_file(path.clone())
					.map_err(|e| format!("chain spec file `{}` is invalid: {e}", path.display()))?,
			)
		}
	})
}

/// One line for the user: the error's message without Debug wrappers.
pub fn describe_error(error: &sc_cli::Error) -> String {
	let text = match error {
		sc_cli::Error::Input(message) => message.clone(),
		other => other.to_string(),
	};
	text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Parses the command line and runs the node or a subcommand.
pub fn run() -> sc_cli::Result<()> {
	let cli = Cli::from_args();

	match &cli.subcommand {
		Some(Subcommand::Key(cmd)) => cmd.run(&cli),
		Some(Subcommand::BuildSpec(cmd)) => {
			let runner = cli.create_runner(cmd)?;
			runner.sync_run(|config| cmd.run(config.chain_spec, config.network))
		}
		Some(Subcommand::ExportChainSpec(cmd)) => {
			let chain_spec = cli.load_spec(&cmd.chain)?;
			cmd.run(chain_spec)
		}
		Some(Subcommand::CheckBlock(cmd)) => {
			let runner = cli.create_runner(cmd)?;
			runner.async_run(|config| {
				let PartialComponents { client, task_manager, import_queue, .. } =
					service::new_partial(&config)?;
				Ok((cmd.run(client, import_queue), task_manager))
			})
		}
		Some(Subcommand::ExportBlocks(cmd)) => {
			let runner = cli.create_runner(cmd)?;
			runner.async_run(|config| {
				let PartialComponents { client, task_manager, .. } = service::new_partial(&config)?;
				Ok((cmd.run(client, config.database), task_manager))
			})
		}
		Some(Subcommand::ExportState(cmd)) => {
			let runner = cli.create_runner(cmd)?;
			runner.async_run(|config| {
				let PartialComponents { client, task_manager, .. } = service::new_partial(&config)?;
				Ok((cmd.run(client, config.chain_spec), task_manager))
			})
		}
		Some(Subcommand::ImportBlocks(cmd)) => {
			let runner = cli.create_runner(cmd)?;
			runner.async_run(|config| {
				let PartialComponents { client, task_manager, import_queue, .. } =
					service::new_partial(&config)?;
				Ok((cmd.run(client, import_queue), task_manager))
			})
		}
		Some(Subcommand::PurgeChain(cmd)) => {
			let runner = cli.create_runner(cmd)?;
			runner.sync_run(|config| cmd.run(config.database))
		}
		Some(Subcommand::Revert(cmd)) => {
			let runner = cli.create_runner(cmd)?;
			runner.async_run(|config| {
				let PartialComponents { client, task_manager, backend, .. } =
					service::new_partial(&config)?;
				let aux_revert = Box::new(|client, _, blocks| {
					sc_consensus_grandpa::revert(client, blocks)?;
					Ok(())
				});
				Ok((cmd.run(client, backend, Some(aux_revert)), task_manager))
			})
		}
		Some(Subcommand::Benchmark(cmd)) => {
			let runner = cli.create_runner(cmd)?;
			runner.sync_run(|config| match cmd {
				BenchmarkCmd::Pallet(cmd) => {
					// The embedded runtime carries benchmarks only in a runtime-benchmarks
					// build; a runtime given with `--runtime` (scripts/benchmark-pallets.sh)
					// brings its own.
					if !cfg!(feature = "runtime-benchmarks") && cmd.runtime.is_none() {
						return Err("the runtime in this build has no benchmarks: pass a \
						            runtime built with them (`--runtime`, see \
						            scripts/benchmark-pallets.sh) or rebuild the node with \
						            `--features runtime-benchmarks`"
							.into());
					}
					cmd.run_with_spec::<sp_runtime::traits::HashingFor<Block>, ()>(Some(
						config.chain_spec,
					))
				}
				BenchmarkCmd::Block(cmd) => {
					let PartialComponents { client, .. } = service::new_partial(&config)?;
					cmd.run(client)
				}
				BenchmarkCmd::Machine(cmd) => {
					cmd.run(&config, SUBSTRATE_REFERENCE_HARDWARE.clone())
				}
				BenchmarkCmd::Storage(_)
				| BenchmarkCmd::Overhead(_)
				| BenchmarkCmd::Extrinsic(_) => {
					Err("this benchmark is not supported by dllm-node yet; use `benchmark \
					     pallet`, `benchmark block` or `benchmark machine`"
						.into())
				}
			})
		}
		Some(Subcommand::ChainInfo(cmd)) => {
			let runner = cli.create_runner(cmd)?;
			runner.sync_run(|config| cmd.run::<Block>(&config))
		}
		None => {
			let runner = cli.create_runner(&cli.run)?;
			let miner = cli.miner.miner.then(|| cli.miner.clone());
			let openai = cli.openai.openai.then(|| cli.openai.clone());
			runner.run_node_until_exit(|config| async move {
				match config.network.network_backend {
					sc_network::config::NetworkBackendType::Libp2p => service::new_full::<
						sc_network::NetworkWorker<
							Block,
							<Block as sp_runtime::traits::Block>::Hash,
						>,
					>(config, miner, openai)
					.map_err(sc_cli::Error::Service),
					sc_network::config::NetworkBackendType::Litep2p => service::new_full::<
						sc_network::Litep2pNetworkBackend,
					>(config, miner, openai)
					.map_err(sc_cli::Error::Service),
				}
			})
		}
	}
}
