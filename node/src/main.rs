//! dllm-node: a validator, RPC endpoint and (with `--miner`) GPU miner of the DLLM chain.

#![warn(missing_docs)]
// The errors returned here are sc_cli's and sc_service's own, as their APIs require;
// boxing them at every call site would only add noise to start-up code.
#![allow(clippy::result_large_err)]

mod chain_spec;
mod cli;
mod command;
mod miner;
mod openai;
mod rpc;
mod service;
mod tokens;

fn main() {
	// Errors are for people: one line that says what is wrong, no stack trace.
	if let Err(error) = command::run() {
		eprintln!("Error: {}", command::describe_error(&error));
		std::process::exit(1);
	}
}
