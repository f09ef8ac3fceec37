//! `dllm-infer`: make random models, generate text through a sharded pipeline, hash
//! chunks and benchmark, from the command line.

use candle_core::{DType, Device, Tensor};
use clap::{Args, Parser, Subcommand};
use dllm_inference::{
	calibration::{run_matrix, MatrixConfig},
	device::{dtype_from_name, parse_device, parse_dtype, parse_format},
	fingerprint::{FingerprintParams, VerificationParams},
	pipeline::{generate, GenerationRequest, LocalTransport},
	record::Record,
	sampling::SamplingParams,
	shard::Shard,
	tiny::{write_tiny_model, TinySpec},
	tokenizer::PromptTokenizer,
	verification::{record_generation, verify_record, VerifyOptions},
	weight_hash::{chunk_hash, config_hash, to_hex, tokenizer_hash},
	InferenceError, LayerRange, ModelDir, Result,
};
use std::{collections::HashMap, path::PathBuf, time::Instant};

#[derive(Parser)]
#[command(name = "dllm-infer", version, about = "Sharded Mistral inference for DLLM miners")]
struct Cli {
	#[command(subcommand)]
	command: Command,
}

#[derive(Subcommand)]
enum Command {
	/// Write a random Mistral model directory (config, tokenizer, safetensors, index).
	MakeTiny(MakeTiny),
	/// Generate tokens through a pipeline of shards in this process.
	Generate(Generate),
	/// Print each chunk's weight hash (and the tokenizer's).
	HashChunks(HashChunks),
	/// Measure prefill and decode speed, memory and time per shard.
	Bench(Bench),
	/// Verify a generation record by one teacher-forced prefill (exit 0 accepted, 1
	/// rejected, 2 bad input).
	Verify(Verify),
	/// Run the verification matrix (false rejects and accepts) and print its table.
	VerificationMatrix(VerificationMatrix),
}

#[derive(Args)]
struct Verify {
	#[command(flatten)]
	model: ModelArgs,
	/// The generation record (`generate --record`).
	#[arg(long)]
	record: PathBuf,
	/// The loosest compute format the model accepts, which sets the tolerance: f32,
	/// f16 or bf16 (docs/verification.md).
	#[arg(long, default_value = "bf16")]
	tolerance: String,
	/// Print the verdicts as JSON.
	#[arg(long)]
	json: bool,
}

#[derive(Args)]
struct VerificationMatrix {
	/// The short version (CI's).
	#[arg(long)]
	quick: bool,
	/// Prompts per model shape (default: 20, quick 3).
	#[arg(long)]
	prompts: Option<usize>,
	/// Where the random models are written (default: a temporary directory).
	#[arg(long)]
	workdir: Option<PathBuf>,
	/// Only the variants whose names contain one of these (comma-separated).
	#[arg(long, value_delimiter = ',')]
	only: Vec<String>,
}

#[derive(Args)]
struct MakeTiny {
	/// Output directory.
	#[arg(long)]
	out: PathBuf,
	#[arg(long, default_value_t = 4)]
	layers: usize,
	#[arg(long, default_value_t = 64)]
	hidden: usize,
	#[arg(long, default_value_t = 4)]
	heads: usize,
	#[arg(long = "kv-heads", default_value_t = 2)]
	kv_heads: usize,
	/// Per-head width (default: hidden / heads).
	#[arg(long = "head-dim")]
	head_dim: Option<usize>,
	#[arg(long, default_value_t = 128)]
	intermediate: usize,
	#[arg(long, default_value_t = 320)]
	vocab: usize,
	/// Attention window; 0 for full attention.
	#[arg(long = "sliding-window", default_value_t = 16)]
	sliding_window: usize,
	#[arg(long = "max-positions", default_value_t = 512)]
	max_positions: usize,
	/// Number of safetensors files.
	#[arg(long, default_value_t = 3)]
	files: usize,
	/// Stored dtype: f32, f16 or bf16.
	#[arg(long, default_value = "f32")]
	dtype: String,
	#[arg(long, default_value_t = 0)]
	seed: u64,
}

#[derive(Args)]
struct ModelArgs {
	/// Model directory (Hugging Face layout).
	#[arg(long)]
	model: PathBuf,
	/// Layer ranges of the shards, e.g. 0..2,2..5 (default: one shard with all layers).
	#[arg(long)]
	shards: Option<String>,
	/// cpu or cuda:N.
	#[arg(long, default_value = "cpu")]
	device: String,
	/// Compute dtype: f32, f16 or bf16 (on a CPU, bf16 is emulated: f32 math with
	/// weights and activations rounded to bf16).
	#[arg(long, default_value = "f32")]
	dtype: String,
}

#[derive(Args)]
struct Generate {
	#[command(flatten)]
	model: ModelArgs,
	/// Prompt text (tokenized with the model's tokenizer.json, BOS first).
	#[arg(long, conflicts_with = "prompt_tokens", required_unless_present = "prompt_tokens")]
	prompt: Option<String>,
	/// Wrap the prompt in the Mistral instruct template.
	#[arg(long, requires = "prompt")]
	chat: bool,
	/// Prompt as token ids, e.g. 1,2,3.
	#[arg(long = "prompt-tokens")]
	prompt_tokens: Option<String>,
	#[arg(long = "max-tokens")]
	max_tokens: usize,
	#[arg(long, default_value_t = 0.0)]
	temperature: f32,
	#[arg(long = "top-k")]
	top_k: Option<usize>,
	#[arg(long = "top-p")]
	top_p: Option<f32>,
	#[arg(long, default_value_t = 0)]
	seed: u64,
	/// Print token ids and text as JSON.
	#[arg(long)]
	json: bool,
	/// Write the logits of every generated token to this safetensors file
	/// (tensor `logits`, [generated, vocab], f32).
	#[arg(long = "logits-out")]
	logits_out: Option<PathBuf>,
	/// Write the generation record (chunk layout, tokens, sampling, stop reason, every
	/// chunk's fingerprints) to this JSON file, for `dllm-infer verify`.
	#[arg(long)]
	record: Option<PathBuf>,
}

#[derive(Args)]
struct HashChunks {
	#[arg(long)]
	model: PathBuf,
	/// Layer ranges, e.g. 0..2,2..4.
	#[arg(long)]
	shards: String,
}

#[derive(Args)]
struct Bench {
	#[command(flatten)]
	model: ModelArgs,
	#[arg(long = "prompt-len", default_value_t = 128)]
	prompt_len: usize,
	#[arg(long, default_value_t = 64)]
	gen: usize,
	/// Also time candle-transformers' Mistral `Model` on the same weights.
	#[arg(long)]
	reference: bool,
	/// Generate with fingerprints, then time the verification of the record (one
	/// teacher-forced prefill with the same shards) against the generation.
	#[arg(long)]
	verify: bool,
}

fn main() {
	let cli = Cli::parse();
	let result = match cli.command {
		Command::MakeTiny(args) => make_tiny(args),
		Command::Generate(args) => run_generate(args),
		Command::HashChunks(args) => hash_chunks(args),
		Command::Bench(args) => bench(args),
		Command::Verify(args) => match verify(args) {
			Ok(true) => Ok(()),
			Ok(false) => std::process::exit(1),
			// Bad input to a verification exits 2, so that 1 always means "rejected".
			Err(error) => fail(&error, 2),
		},
		Command::VerificationMatrix(args) => verification_matrix(args),
	};
	if let Err(error) = result {
		fail(&error, 1);
	}
}

/// Prints `error` on one line, whatever the underlying library put in its message.
fn fail(error: &InferenceError, code: i32) -> ! {
	let message = error.to_string().lines().map(str::trim).collect::<Vec<_>>().join("; ");
	eprintln!("error: {message}");
	std::process::exit(code);
}

fn make_tiny(args: MakeTiny) -> Result<()> {
	let dtype = dtype_from_name(&args.dtype)?;
	let spec = TinySpec {
		layers: args.layers,
		hidden: args.hidden,
		heads: args.heads,
		kv_heads: args.kv_heads,
		head_dim: args.head_dim,
		intermediate: args.intermediate,
		vocab: args.vocab,
		sliding_window: (args.sliding_window > 0).then_some(args.sliding_window),
		max_positions: args.max_positions,
		files: args.files,
		dtype,
		seed: args.seed,
	};
	write_tiny_model(&args.out, &spec)?;
	println!("{}", args.out.display());
	Ok(())
}

/// Opens the model and loads its shards into a local pipeline.
fn load_pipeline(args: &ModelArgs) -> Result<(ModelDir, LocalTransport, Device)> {
	let (dir, shards, device) = load_shards(args, None)?;
	Ok((dir, LocalTransport::new(shards)?, device))
}

/// Opens the model and loads the shards `args` name (default: `default`, else all layers).
fn load_shards(
	args: &ModelArgs,
	default: Option<Vec<LayerRange>>,
) -> Result<(ModelDir, Vec<Shard>, Device)> {
	let device = parse_device(&args.device)?;
	let format = parse_format(&args.dtype, &device)?;
	let dir = ModelDir::open(&args.model)?;
	let layers = dir.config().num_hidden_layers;
	let ranges = match (&args.shards, default) {
		(Some(list), _) => LayerRange::parse_list(list)?,
		(None, Some(ranges)) => ranges,
		(None, None) => vec![LayerRange::new(0, layers)?],
	};
	LayerRange::check_partition(&ranges, layers)?;
	let shards = ranges
		.iter()
		.map(|range| Shard::load_as(&dir, *range, &device, format))
		.collect::<Result<Vec<_>>>()?;
	Ok((dir, shards, device))
}

fn parse_tokens(text: &str) -> Result<Vec<u32>> {
	text.split(',')
		.map(|t| {
			t.trim().parse::<u32>().map_err(|_| {
				InferenceError::Input(format!("{t:?} in --prompt-tokens is not a token id"))
			})
		})
		.collect()
}

fn run_generate(args: Generate) -> Result<()> {
	let (dir, mut transport, device) = load_pipeline(&args.model)?;
	let config = dir.config().clone();
	let tokenizer = PromptTokenizer::from_file(&dir.tokenizer_path(), &config);
	let prompt = match (&args.prompt, &args.prompt_tokens) {
		(Some(text), _) => tokenizer.as_ref().map_err(clone_error)?.encode(text, args.chat)?,
		(None, Some(ids)) => parse_tokens(ids)?,
		(None, None) => {
			return Err(InferenceError::Input("give --prompt or --prompt-tokens".into()))
		}
	};
	if let Some(bad) = prompt.iter().find(|t| **t as usize >= config.vocab_size) {
		return Err(InferenceError::Input(format!(
			"token id {bad} is outside the vocabulary of {}",
			config.vocab_size
		)));
	}
	let needed = prompt.len() + args.max_tokens.saturating_sub(1);
	if needed > config.max_position_embeddings {
		return Err(InferenceError::Input(format!(
			"the prompt ({} tokens) plus --max-tokens {} needs {needed} positions; the model has {}",
			prompt.len(),
			args.max_tokens,
			config.max_position_embeddings
		)));
	}
	let request = GenerationRequest {
		session: 1,
		prompt: prompt.clone(),
		max_tokens: args.max_tokens,
		sampling: SamplingParams {
			temperature: args.temperature,
			top_k: args.top_k,
			top_p: args.top_p,
			seed: args.seed,
		},
		stop_tokens: config.eos_token_ids(),
		keep_logits: args.logits_out.is_some(),
	};
	let output = match &args.record {
		Some(path) => {
			let hashes = transport
				.shards()
				.iter()
				.map(|s| chunk_hash(&dir, s.range()))
				.collect::<Result<Vec<_>>>()?;
			let compute = transport.shards()[0].format().name();
			let mut transport = transport.with_fingerprints(FingerprintParams::DEFAULT);
			let (output, record) =
				record_generation(&mut transport, &request, &device, &hashes, compute)?;
			record.save(path)?;
			output
		}
		None => generate(&mut transport, &request, &device)?,
	};
	let text = match &tokenizer {
		Ok(tokenizer) => Some(tokenizer.decode(&output.tokens)?),
		Err(_) => None,
	};
	if let Some(path) = &args.logits_out {
		let vocab = config.vocab_size;
		let flat: Vec<f32> = output.logits.iter().flatten().copied().collect();
		let logits = Tensor::from_vec(flat, (output.logits.len(), vocab), &Device::Cpu)?;
		let tensors: HashMap<String, Tensor> =
			[("logits".to_string(), logits)].into_iter().collect();
		candle_core::safetensors::save(&tensors, path)
			.map_err(|e| InferenceError::Weights(format!("{}: {e}", path.display())))?;
	}
	if args.json {
		let json = serde_json::json!({
			"prompt_tokens": prompt,
			"tokens": output.tokens,
			"text": text,
			"stopped_by_eos": output.stopped,
		});
		println!("{json}");
	} else {
		println!("{}", text.unwrap_or_else(|| format!("{:?}", output.tokens)));
	}
	Ok(())
}

fn clone_error(error: &InferenceError) -> InferenceError {
	InferenceError::Tokenizer(error.to_string())
}

fn hash_chunks(args: HashChunks) -> Result<()> {
	let dir = ModelDir::open(&args.model)?;
	let ranges = LayerRange::parse_list(&args.shards)?;
	for range in &ranges {
		range.check_within(dir.config().num_hidden_layers)?;
	}
	for range in ranges {
		println!("{range} {}", to_hex(&chunk_hash(&dir, range)?));
	}
	println!("config {}", to_hex(&config_hash(dir.config())?));
	if dir.tokenizer_path().is_file() {
		println!("tokenizer {}", to_hex(&tokenizer_hash(&dir)?));
		let tokenizer = PromptTokenizer::from_file(&dir.tokenizer_path(), dir.config())?;
		println!("max-token-bytes {}", tokenizer.max_token_bytes()?);
	}
	Ok(())
}

/// Peak resident set size of this process, from /proc (Linux).
fn peak_rss_mib() -> Option<f64> {
	let status = std::fs::read_to_string("/proc/self/status").ok()?;
	let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
	let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
	Some(kib / 1024.0)
}

fn bench(args: Bench) -> Result<()> {
	let loaded = Instant::now();
	let (dir, mut transport, device) = load_pipeline(&args.model)?;
	let load_time = loaded.elapsed();
	let config = dir.config().clone();
	if args.prompt_len == 0 || args.gen < 2 {
		return Err(InferenceError::Input("--prompt-len must be >= 1 and --gen >= 2".into()));
	}
	if args.prompt_len + args.gen > config.max_position_embeddings {
		return Err(InferenceError::Input(
			"prompt-len + gen exceeds the model's max positions".into(),
		));
	}
	// A fixed pseudo-random prompt, so runs are comparable.
	let prompt: Vec<u32> = (0..args.prompt_len)
		.map(|i| ((i as u64 * 2654435761) % config.vocab_size as u64) as u32)
		.collect();
	let request = GenerationRequest {
		session: 7,
		prompt: prompt.clone(),
		max_tokens: args.gen,
		sampling: SamplingParams::greedy(),
		stop_tokens: vec![],
		keep_logits: false,
	};
	let (output, record) = if args.verify {
		let hashes = vec![[0u8; 32]; transport.shards().len()];
		let compute = transport.shards()[0].format().name();
		let mut recording = transport.with_fingerprints(FingerprintParams::DEFAULT);
		let (output, record) =
			record_generation(&mut recording, &request, &device, &hashes, compute)?;
		transport = recording;
		(output, Some(record))
	} else {
		(generate(&mut transport, &request, &device)?, None)
	};
	let prefill_tps = args.prompt_len as f64 / output.prefill_time.as_secs_f64();
	let decode_tps = (args.gen - 1) as f64 / output.decode_time.as_secs_f64();
	let weight_mib: f64 =
		transport.shards().iter().map(|s| s.weight_bytes() as f64).sum::<f64>() / (1024.0 * 1024.0);

	println!("| metric | value |");
	println!("| --- | --- |");
	println!(
		"| model | {} layers, hidden {}, vocab {} |",
		config.num_hidden_layers, config.hidden_size, config.vocab_size
	);
	println!(
		"| shards | {} |",
		transport.shards().iter().map(|s| s.range().to_string()).collect::<Vec<_>>().join(",")
	);
	println!("| load time | {:.2} s |", load_time.as_secs_f64());
	println!("| prefill ({} tokens) | {prefill_tps:.1} tokens/s |", args.prompt_len);
	println!("| decode ({} tokens) | {decode_tps:.2} tokens/s |", args.gen - 1);
	println!("| weights held | {weight_mib:.1} MiB |");
	if let Some(rss) = peak_rss_mib() {
		println!("| peak RSS | {rss:.1} MiB |");
	}
	let total: f64 = transport.stage_times().iter().map(|t| t.as_secs_f64()).sum();
	for (shard, time) in transport.shards().iter().zip(transport.stage_times()) {
		println!(
			"| time in shard {} | {:.3} s ({:.0}%) |",
			shard.range(),
			time.as_secs_f64(),
			100.0 * time.as_secs_f64() / total.max(f64::EPSILON)
		);
	}
	println!("| activation bytes sent | {} |", transport.bytes_sent());
	if let Some(record) = record {
		let generation = output.prefill_time + output.decode_time;
		let verification = verify_record(
			transport.shards_mut(),
			&record,
			&VerifyOptions::default(),
			&request.stop_tokens,
		)?;
		if !verification.accepted() {
			return Err(InferenceError::Fingerprint(format!(
				"the benchmark's own record was rejected: {}",
				verification.to_json()
			)));
		}
		println!(
			"| generation with fingerprints ({} + {} tokens) | {:.3} s |",
			args.prompt_len,
			args.gen,
			generation.as_secs_f64()
		);
		println!(
			"| verification (prefill of {} positions, fingerprints, comparison, sampling check) | {:.3} s (prefill {:.3} s) |",
			record.positions(),
			verification.total_time.as_secs_f64(),
			verification.prefill_time.as_secs_f64()
		);
		println!(
			"| verification / generation | {:.3} |",
			verification.total_time.as_secs_f64() / generation.as_secs_f64()
		);
		for chunk in &record.chunks {
			let bytes = chunk.hidden.encode().len();
			let per_block = (bytes - dllm_inference::fingerprint::HEADER_BYTES) as f64
				/ (record.positions() as f64 / 32.0);
			println!(
				"| fingerprint of chunk {} | {bytes} bytes ({per_block:.0} per 32 positions) |",
				chunk.layers
			);
		}
	}
	if args.reference {
		drop(transport);
		let tps = reference_decode(&dir, &args, &prompt, &device)?;
		println!("| candle-transformers Model decode | {tps:.2} tokens/s |");
		println!("| ours / candle-transformers | {:.3} |", decode_tps / tps);
	}
	Ok(())
}

/// Decode tokens/s of candle-transformers' Mistral `Model` on the same weights and prompt.
fn reference_decode(dir: &ModelDir, args: &Bench, prompt: &[u32], device: &Device) -> Result<f64> {
	use candle_transformers::models::mistral::{Config, Model};
	let dtype = parse_dtype(&args.model.dtype, device)?;
	let c = dir.config();
	let config = Config {
		vocab_size: c.vocab_size,
		hidden_size: c.hidden_size,
		intermediate_size: c.intermediate_size,
		num_hidden_layers: c.num_hidden_layers,
		num_attention_heads: c.num_attention_heads,
		head_dim: Some(c.head_dim()),
		num_key_value_heads: c.num_kv_heads(),
		hidden_act: candle_nn::Activation::Silu,
		max_position_embeddings: c.max_position_embeddings,
		rms_norm_eps: c.rms_norm_eps,
		rope_theta: c.rope_theta()?,
		sliding_window: c.sliding_window,
		use_flash_attn: false,
	};
	let names: Vec<String> = dir.tensor_names().map(str::to_string).collect();
	let files = dir.files_for(&names)?;
	// SAFETY: read-only maps of files not modified while the benchmark runs.
	let vb = unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&files, dtype, device)? };
	let mut model = Model::new(&config, vb)?;
	let input = Tensor::new(prompt, device)?.unsqueeze(0)?;
	let logits = model.forward(&input, 0)?;
	let mut token = dllm_inference::sampling::argmax(
		&logits.squeeze(0)?.squeeze(0)?.to_dtype(DType::F32)?.to_vec1()?,
	);
	let started = Instant::now();
	for step in 0..args.gen - 1 {
		let input = Tensor::new(&[token], device)?.unsqueeze(0)?;
		let logits = model.forward(&input, prompt.len() + step)?;
		token = dllm_inference::sampling::argmax(
			&logits.squeeze(0)?.squeeze(0)?.to_dtype(DType::F32)?.to_vec1()?,
		);
	}
	Ok((args.gen - 1) as f64 / started.elapsed().as_secs_f64())
}

/// `verify`: true when everything is accepted.
fn verify(args: Verify) -> Result<bool> {
	let params = VerificationParams::for_format(&args.tolerance).ok_or_else(|| {
		InferenceError::Input(format!("--tolerance {:?}: use f32, f16 or bf16", args.tolerance))
	})?;
	let record = Record::load(&args.record)?;
	let (dir, mut shards, _device) = load_shards(&args.model, Some(record.layout()))?;
	record.check_model(dir.config())?;
	for chunk in &record.chunks {
		let ours = chunk_hash(&dir, chunk.layers)?;
		if ours != chunk.weight_hash {
			return Err(InferenceError::Record(format!(
				"the record is for another model: chunk {} of {} has weight hash {}, the record says {}",
				chunk.layers,
				args.model.model.display(),
				to_hex(&ours),
				to_hex(&chunk.weight_hash)
			)));
		}
	}
	let options = VerifyOptions { params, ..VerifyOptions::default() };
	let verification =
		verify_record(&mut shards, &record, &options, &dir.config().eos_token_ids())?;
	if args.json {
		println!("{}", verification.to_json());
	} else {
		for (i, chunk) in verification.chunks.iter().enumerate() {
			let status = if chunk.accepted() { "accepted" } else { "REJECTED" };
			let block = chunk
				.hidden
				.first_bad_block()
				.or(chunk.logits.as_ref().and_then(|l| l.first_bad_block()))
				.map(|b| format!(", first bad block {b}"))
				.unwrap_or_default();
			println!("chunk {i} ({}): {status}{block}", chunk.layers);
		}
		let sampling = &verification.sampling;
		match (&sampling.first_bad_position, &sampling.reason) {
			(Some(p), Some(reason)) => {
				println!("sampling: REJECTED at generated token {p}: {reason}")
			}
			_ => println!("sampling: accepted"),
		}
		println!(
			"verified {} positions in {:.3} s (prefill {:.3} s)",
			record.positions(),
			verification.total_time.as_secs_f64(),
			verification.prefill_time.as_secs_f64()
		);
	}
	Ok(verification.accepted())
}

fn verification_matrix(args: VerificationMatrix) -> Result<()> {
	let mut config = if args.quick { MatrixConfig::quick() } else { MatrixConfig::full() };
	config.only = args.only.clone();
	if let Some(prompts) = args.prompts {
		config.prompts = prompts.max(1);
	}
	let temp = std::env::temp_dir().join(format!("dllm-matrix-{}", std::process::id()));
	let workdir = args.workdir.clone().unwrap_or_else(|| temp.clone());
	let report = run_matrix(&config, &workdir, |line| eprintln!("{line}"));
	if args.workdir.is_none() {
		let _ = std::fs::remove_dir_all(&temp);
	}
	let report = report?;
	println!("{}", report.markdown());
	println!(
		"{} shapes x {} prompts x greedy/sampled; {} positions verified in {:.0} s",
		config.shapes.len(),
		config.prompts,
		report.positions,
		report.seconds
	);
	Ok(())
}
