//! The verification matrix: how often honest work is rejected and wrong work accepted.
//!
//! For each random model shape and prompt, greedy and seeded sampling, a generator
//! pipeline produces a record (honestly in several compute formats, or dishonestly in
//! several ways) and an honest verifier checks it with [`verify_record`]. Every case
//! also compares the integer verdict with the float reference's. `dllm-infer
//! verification-matrix` prints the table that docs/verification.md records;
//! `tests/verification.rs` runs the quick version and checks the goals.

use crate::{
	device::ComputeFormat,
	error::{InferenceError, Result},
	fingerprint::{BlockScore, FingerprintParams, VerificationParams},
	model_dir::ModelDir,
	pipeline::{generate, GenerationRequest, LocalTransport, Transport},
	record::{Record, StopReason},
	sampling::SamplingParams,
	shard::{SessionId, Shard},
	tiny::{write_tiny_model, TinySpec, EOS},
	verification::{verify_record, GeneratorStages, Verification, VerifyOptions},
	weight_hash::chunk_hash,
	wire::{ActivationMessage, Payload},
	LayerRange,
};
use candle_core::{DType, Device, Tensor};
use std::{
	collections::HashMap,
	path::{Path, PathBuf},
	time::Instant,
};

/// A model shape of the matrix and how it is chunked.
#[derive(Debug, Clone)]
pub struct Shape {
	/// Short name for the tables.
	pub name: &'static str,
	/// The random model.
	pub spec: TinySpec,
	/// The record's chunks.
	pub chunks: Vec<LayerRange>,
}

/// What the matrix runs.
#[derive(Debug, Clone)]
pub struct MatrixConfig {
	/// Model shapes.
	pub shapes: Vec<Shape>,
	/// Prompts per shape (each run greedy and sampled).
	pub prompts: usize,
	/// Shortest and longest prompt.
	pub prompt_len: (usize, usize),
	/// Fewest and most generated tokens.
	pub gen_len: (usize, usize),
	/// The tolerance profiles under test, named by the loosest format each accepts, from
	/// the strictest.
	pub profiles: Vec<(&'static str, VerificationParams)>,
	/// Run only the variants whose names contain one of these (empty: all).
	pub only: Vec<String>,
}

fn ranges(list: &str) -> Vec<LayerRange> {
	LayerRange::parse_list(list).unwrap_or_default()
}

impl MatrixConfig {
	/// The three shapes: GQA with a sliding window the sequences cross; a head width
	/// that is not hidden / heads (full attention); a wider model in two uneven chunks.
	pub fn shapes() -> Vec<Shape> {
		let base = TinySpec { vocab: 320, max_positions: 1024, files: 2, ..TinySpec::default() };
		vec![
			Shape {
				name: "gqa-window",
				spec: TinySpec {
					layers: 4,
					hidden: 128,
					heads: 8,
					kv_heads: 2,
					intermediate: 256,
					sliding_window: Some(64),
					seed: 11,
					..base.clone()
				},
				chunks: ranges("0..2,2..4"),
			},
			Shape {
				name: "head-dim",
				spec: TinySpec {
					layers: 6,
					hidden: 96,
					heads: 4,
					kv_heads: 2,
					head_dim: Some(32),
					intermediate: 192,
					sliding_window: None,
					seed: 12,
					..base.clone()
				},
				chunks: ranges("0..2,2..4,4..6"),
			},
			Shape {
				name: "wide",
				spec: TinySpec {
					layers: 3,
					hidden: 256,
					heads: 8,
					kv_heads: 4,
					intermediate: 512,
					vocab: 512,
					sliding_window: Some(128),
					seed: 13,
					..base
				},
				chunks: ranges("0..1,1..3"),
			},
		]
	}

	/// The full matrix: 20 prompts of 16–512 tokens, 32–256 generated.
	pub fn full() -> Self {
		MatrixConfig {
			shapes: Self::shapes(),
			prompts: 20,
			prompt_len: (16, 512),
			gen_len: (32, 256),
			profiles: vec![
				("f32", VerificationParams::F32),
				("f16", VerificationParams::F16),
				("bf16", VerificationParams::BF16),
			],
			only: Vec::new(),
		}
	}

	/// A short version for CI: 3 prompts of 16–96 tokens, 32–48 generated.
	pub fn quick() -> Self {
		MatrixConfig { prompts: 3, prompt_len: (16, 96), gen_len: (32, 48), ..Self::full() }
	}
}

/// What a case should end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
	/// Honest work.
	Accept,
	/// Wrong work.
	Reject,
}

/// The generator's side of a case.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Generator {
	/// The model itself, in a compute format, with `chunks` or one chunk.
	Honest {
		format: ComputeFormat,
		one_chunk: bool,
		one_thread: bool,
	},
	/// A copy with one weight matrix perturbed by this share of its RMS.
	Perturbed(f32),
	SkippedLayer,
	SwappedLayers,
	OtherModel,
	/// Chunk 0's output scaled.
	Scaled(f64),
	/// Chunk 0's output at one position replaced by the previous position's.
	CorruptedPosition,
	/// Honest generation, then one generated token replaced in the record.
	ReplacedToken,
	/// Sampled with another seed (sampled tasks).
	OtherSeed,
	/// Greedy decoding reported as the sampled task (sampled tasks).
	GreedyForSampled,
	/// Stopped at half of max_tokens, its last token replaced by EOS and reported as
	/// ended by EOS.
	TruncatedAsEos,
}

/// One row of the matrix.
#[derive(Debug, Clone, Copy)]
struct Variant {
	name: &'static str,
	expect: Expect,
	/// Honest work: how loose a profile must be to accept it (0 f32, 1 f16, 2 bf16).
	needs: usize,
	generator: Generator,
	/// The verifier computes in bf16 (emulated) instead of f32.
	verifier_bf16: bool,
	/// Only for sampled tasks.
	sampled_only: bool,
}

const fn honest(
	name: &'static str,
	format: ComputeFormat,
	one_chunk: bool,
	one_thread: bool,
	verifier_bf16: bool,
) -> Variant {
	let needs = match (verifier_bf16, format.round_to, format.dtype) {
		(true, _, _) | (false, Some(_), _) | (false, None, DType::BF16) => 2,
		(false, None, DType::F16) => 1,
		_ => 0,
	};
	Variant {
		name,
		expect: Expect::Accept,
		needs,
		generator: Generator::Honest { format, one_chunk, one_thread },
		verifier_bf16,
		sampled_only: false,
	}
}

const fn wrong(name: &'static str, generator: Generator, sampled_only: bool) -> Variant {
	Variant {
		name,
		expect: Expect::Reject,
		needs: 0,
		generator,
		verifier_bf16: false,
		sampled_only,
	}
}

const F32: ComputeFormat = ComputeFormat::native(DType::F32);
const F16: ComputeFormat = ComputeFormat::native(DType::F16);
const BF16: ComputeFormat = ComputeFormat::BF16_EMULATED;

const VARIANTS: [Variant; 19] = [
	honest("f32 (decode vs prefill)", F32, false, false, false),
	honest("f16 compute", F16, false, false, false),
	honest("bf16 compute (emulated)", BF16, false, false, false),
	honest("f32, verifier bf16 (emulated)", F32, false, false, true),
	honest("bf16, verifier bf16 (emulated)", BF16, false, false, true),
	honest("1 thread vs 2", F32, false, true, false),
	honest("one shard vs several", F32, true, false, false),
	wrong("weight matrix perturbed 1%", Generator::Perturbed(0.01), false),
	wrong("weight matrix perturbed 2%", Generator::Perturbed(0.02), false),
	wrong("weight matrix perturbed 5%", Generator::Perturbed(0.05), false),
	wrong("one layer skipped", Generator::SkippedLayer, false),
	wrong("two layers swapped", Generator::SwappedLayers, false),
	wrong("another model", Generator::OtherModel, false),
	wrong("hidden states scaled by 1.01", Generator::Scaled(1.01), false),
	wrong("one position corrupted", Generator::CorruptedPosition, false),
	wrong("one generated token replaced", Generator::ReplacedToken, false),
	wrong("sampled with another seed", Generator::OtherSeed, true),
	wrong("greedy reported as sampled", Generator::GreedyForSampled, true),
	wrong("truncated, reported as EOS", Generator::TruncatedAsEos, false),
];

/// The weight matrices a perturbation cycles through.
const MATRICES: [&str; 7] = [
	"self_attn.q_proj",
	"self_attn.k_proj",
	"self_attn.v_proj",
	"self_attn.o_proj",
	"mlp.gate_proj",
	"mlp.up_proj",
	"mlp.down_proj",
];

/// Min and max of a number over cases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
	/// Smallest seen.
	pub min: f64,
	/// Largest seen.
	pub max: f64,
}

impl Range {
	fn new() -> Self {
		Range { min: f64::INFINITY, max: f64::NEG_INFINITY }
	}

	fn add(&mut self, value: f64) {
		self.min = self.min.min(value);
		self.max = self.max.max(value);
	}
}

/// The tally of one variant over its cases.
#[derive(Debug, Clone)]
pub struct Tally {
	/// Variant name.
	pub name: &'static str,
	/// What it should end in under a profile loose enough for it.
	pub expect: Expect,
	/// Honest work: the index of the strictest profile that should accept it.
	pub needs: usize,
	/// Cases run.
	pub cases: usize,
	/// Cases accepted, per profile.
	pub accepted: Vec<usize>,
	/// Verdicts (case × profile, where the verdict is specified) in which the float
	/// reference's verdict on the case differed from the integer comparison's.
	pub float_disagreements: usize,
	/// Under the loosest profile: rejections by a fingerprint (some chunk rejected).
	pub by_fingerprint: usize,
	/// Under the loosest profile: rejections by the sampling or stop check alone.
	pub by_sampling_only: usize,
	/// Perturbed matrices that some case accepted, per profile.
	pub missed: Vec<std::collections::BTreeSet<&'static str>>,
	/// Worst block mean projection error over a case's chunks (units of RMS).
	pub block_error: Range,
	/// Worst position error (units of RMS).
	pub position_error: Range,
	/// Worst log2-RMS error of a position.
	pub log_rms_error: Range,
	/// Worst block log2-RMS bias.
	pub log_rms_bias: Range,
	/// Lowest top-k overlap (share).
	pub overlap: Range,
	/// Worst top-k value error (units of RMS).
	pub top_k_error: Range,
	/// Worst logits block error (units of RMS).
	pub logits_error: Range,
	/// Greedy cases: largest gap between the best logit and the token's.
	pub greedy_gap: Range,
}

impl Tally {
	fn new(variant: &Variant, profiles: usize) -> Self {
		Tally {
			name: variant.name,
			expect: variant.expect,
			needs: variant.needs,
			cases: 0,
			accepted: vec![0; profiles],
			float_disagreements: 0,
			by_fingerprint: 0,
			by_sampling_only: 0,
			missed: vec![Default::default(); profiles],
			block_error: Range::new(),
			position_error: Range::new(),
			log_rms_error: Range::new(),
			log_rms_bias: Range::new(),
			overlap: Range::new(),
			top_k_error: Range::new(),
			logits_error: Range::new(),
			greedy_gap: Range::new(),
		}
	}

	/// Adds one case: its verification under each profile, in order.
	fn add(&mut self, verifications: &[Verification], perturbed: Option<&'static str>) {
		use crate::fingerprint::{LOG_RMS_SCALE, PROJECTION_SCALE, VALUE_SCALE};
		self.cases += 1;
		for (profile, verification) in verifications.iter().enumerate() {
			let accepted = verification.accepted();
			self.accepted[profile] += accepted as usize;
			if accepted {
				if let Some(matrix) = perturbed {
					self.missed[profile].insert(matrix);
				}
			}
			// Counted where a verdict is specified: honest work the profile accepts, and
			// wrong work (a format the profile does not accept sits near its thresholds
			// by construction, and either verdict is right there).
			let specified = self.expect == Expect::Reject || self.should_accept(profile);
			if specified && verification.float_accepted() != accepted {
				self.float_disagreements += 1;
			}
		}
		let Some(loosest) = verifications.last() else { return };
		if !loosest.accepted() {
			if loosest.first_bad_chunk().is_some() {
				self.by_fingerprint += 1;
			} else {
				self.by_sampling_only += 1;
			}
		}
		// The numbers do not depend on the profile.
		let mut worst = BlockScore { top_k_overlap: 1000, ..BlockScore::default() };
		for chunk in &loosest.chunks {
			if let Some(Ok(c)) = chunk.hidden.as_ref().map(|h| &h.comparison) {
				worst.block_error = worst.block_error.max(c.worst.block_error);
				worst.position_error = worst.position_error.max(c.worst.position_error);
				worst.log_rms_error = worst.log_rms_error.max(c.worst.log_rms_error);
				worst.log_rms_bias = worst.log_rms_bias.max(c.worst.log_rms_bias);
				worst.top_k_overlap = worst.top_k_overlap.min(c.worst.top_k_overlap);
				worst.top_k_error = worst.top_k_error.max(c.worst.top_k_error);
			}
			if let Some(Ok(c)) = chunk.logits.as_ref().map(|l| &l.comparison) {
				self.logits_error.add(c.worst.block_error as f64 / PROJECTION_SCALE);
			}
		}
		self.block_error.add(worst.block_error as f64 / PROJECTION_SCALE);
		self.position_error.add(worst.position_error as f64 / PROJECTION_SCALE);
		self.log_rms_error.add(worst.log_rms_error as f64 / LOG_RMS_SCALE);
		self.log_rms_bias.add(worst.log_rms_bias as f64 / LOG_RMS_SCALE);
		self.overlap.add(worst.top_k_overlap as f64 / 1000.0);
		self.top_k_error.add(worst.top_k_error as f64 / VALUE_SCALE);
		if let Some(gap) = loosest.sampling.max_greedy_gap {
			self.greedy_gap.add(gap);
		}
	}

	/// Whether profile `index` should accept this variant.
	pub fn should_accept(&self, profile: usize) -> bool {
		self.expect == Expect::Accept && profile >= self.needs
	}

	/// Cases that ended as they should not under profile `index` (false rejects of work
	/// the profile accepts, false accepts of wrong work).
	pub fn wrong_verdicts(&self, profile: usize) -> usize {
		match (self.expect, self.should_accept(profile)) {
			(Expect::Accept, true) => self.cases - self.accepted[profile],
			(Expect::Accept, false) => 0,
			(Expect::Reject, _) => self.accepted[profile],
		}
	}
}

/// The matrix's result.
#[derive(Debug, Clone)]
pub struct MatrixReport {
	/// The profiles' names, from the strictest.
	pub profiles: Vec<&'static str>,
	/// One tally per variant.
	pub tallies: Vec<Tally>,
	/// Wall time of the whole run, seconds.
	pub seconds: f64,
	/// Positions verified in all (once per profile).
	pub positions: usize,
}

impl MatrixReport {
	/// The tally of the variant named `name`.
	pub fn tally(&self, name: &str) -> Option<&Tally> {
		self.tallies.iter().find(|t| t.name == name)
	}

	/// The verdict table docs/verification.md shows: per variant and tolerance profile,
	/// cases accepted (marked where that is the wrong verdict).
	pub fn verdicts_markdown(&self) -> String {
		let mut out = String::from("| claimed computation | cases |");
		for p in &self.profiles {
			out.push_str(&format!(" accepted, {p} tolerance |"));
		}
		out.push_str(" float ref. differs | rejected by fingerprint / sampling only | perturbed matrices accepted |\n| --- | --- |");
		out.push_str(&" --- |".repeat(self.profiles.len() + 3));
		out.push('\n');
		for t in &self.tallies {
			out.push_str(&format!("| {} | {} |", t.name, t.cases));
			for (i, accepted) in t.accepted.iter().enumerate() {
				let should = if t.should_accept(i) { t.cases } else { 0 };
				let mark = if t.wrong_verdicts(i) > 0 { " **✗**" } else { "" };
				let note = if t.expect == Expect::Accept && !t.should_accept(i) {
					" (format not accepted)"
				} else {
					""
				};
				out.push_str(&format!(" {accepted} (should {should}){mark}{note} |"));
			}
			let missed: Vec<String> = t
				.missed
				.iter()
				.zip(&self.profiles)
				.filter(|(m, _)| !m.is_empty())
				.map(|(m, p)| format!("{p}: {}", m.iter().copied().collect::<Vec<_>>().join(", ")))
				.collect();
			out.push_str(&format!(
				" {} | {} / {} | {} |\n",
				t.float_disagreements,
				t.by_fingerprint,
				t.by_sampling_only,
				if missed.is_empty() { "–".into() } else { missed.join("; ") }
			));
		}
		out
	}

	/// The numbers behind the verdicts (ranges over cases of each case's worst).
	pub fn numbers_markdown(&self) -> String {
		let mut out = String::from(
			"| claimed computation | block error | position error | log2 RMS error | log2 RMS bias | top-k overlap | top-k value error | logits block error | greedy logit gap |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
		);
		let range = |r: &Range, digits: usize| {
			if r.min.is_finite() {
				format!("{:.*}–{:.*}", digits, r.min, digits, r.max)
			} else {
				"–".into()
			}
		};
		for t in &self.tallies {
			out.push_str(&format!(
				"| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
				t.name,
				range(&t.block_error, 4),
				range(&t.position_error, 4),
				range(&t.log_rms_error, 4),
				range(&t.log_rms_bias, 4),
				range(&t.overlap, 2),
				range(&t.top_k_error, 4),
				range(&t.logits_error, 4),
				range(&t.greedy_gap, 3),
			));
		}
		out
	}

	/// Both tables.
	pub fn markdown(&self) -> String {
		format!("{}\n{}", self.verdicts_markdown(), self.numbers_markdown())
	}
}

/// Runs the matrix in `workdir` (models are written there), reporting progress.
pub fn run_matrix(
	config: &MatrixConfig,
	workdir: &Path,
	mut progress: impl FnMut(&str),
) -> Result<MatrixReport> {
	let started = Instant::now();
	let profiles = config.profiles.len();
	let variants: Vec<Variant> = VARIANTS
		.iter()
		.filter(|v| {
			config.only.is_empty() || config.only.iter().any(|o| v.name.contains(o.as_str()))
		})
		.copied()
		.collect();
	let mut tallies: Vec<Tally> = variants.iter().map(|v| Tally::new(v, profiles)).collect();
	let mut positions = 0;
	for shape in &config.shapes {
		let mut lab = Lab::new(shape, workdir)?;
		for prompt_index in 0..config.prompts {
			for sampled in [false, true] {
				let case = Case::new(config, shape, prompt_index, sampled);
				for (variant, tally) in variants.iter().zip(tallies.iter_mut()) {
					if variant.sampled_only && !sampled {
						continue;
					}
					let (record, perturbed) = lab.record(variant, &case, prompt_index)?;
					let verifier = if variant.verifier_bf16 {
						&mut lab.verifier_bf16
					} else {
						&mut lab.verifier
					};
					let mut verifications = Vec::with_capacity(profiles);
					for (_, params) in &config.profiles {
						let options = VerifyOptions { params: *params, ..VerifyOptions::default() };
						verifications.push(verify_record(verifier, &record, &options, &[EOS])?);
						positions += record.positions();
					}
					tally.add(&verifications, perturbed);
				}
			}
			progress(&format!(
				"{}: prompt {}/{} done ({:.0} s)",
				shape.name,
				prompt_index + 1,
				config.prompts,
				started.elapsed().as_secs_f64()
			));
		}
	}
	Ok(MatrixReport {
		profiles: config.profiles.iter().map(|(name, _)| *name).collect(),
		tallies,
		seconds: started.elapsed().as_secs_f64(),
		positions,
	})
}

/// One prompt, greedy or sampled.
struct Case {
	prompt: Vec<u32>,
	max_tokens: usize,
	sampling: SamplingParams,
}

impl Case {
	fn new(config: &MatrixConfig, shape: &Shape, index: usize, sampled: bool) -> Self {
		let spread = |(lo, hi): (usize, usize), i: usize| {
			lo + (hi - lo) * i / config.prompts.saturating_sub(1).max(1)
		};
		let len = spread(config.prompt_len, index);
		// Generation lengths in another order than the prompt lengths.
		let max_tokens = spread(config.gen_len, (index * 7) % config.prompts.max(1));
		let vocab = shape.spec.vocab as u64;
		let salt = index as u64 * 1_000 + shape.spec.seed;
		let mut prompt = vec![crate::tiny::BOS];
		prompt.extend(
			(1..len as u64).map(|i| (((i + salt) * 2_654_435_761) % (vocab - 3) + 3) as u32),
		);
		let sampling = if sampled {
			SamplingParams { temperature: 0.8, top_k: Some(40), top_p: Some(0.95), seed: salt + 5 }
		} else {
			SamplingParams::greedy()
		};
		Case { prompt, max_tokens, sampling }
	}

	fn request(&self, session: SessionId) -> GenerationRequest {
		GenerationRequest {
			session,
			prompt: self.prompt.clone(),
			max_tokens: self.max_tokens,
			sampling: self.sampling,
			stop_tokens: vec![EOS],
			keep_logits: false,
		}
	}
}

/// A shape's models, pipelines and verifiers.
struct Lab {
	shape: Shape,
	root: PathBuf,
	model: ModelDir,
	hashes: Vec<[u8; 32]>,
	hashes_one_chunk: Vec<[u8; 32]>,
	pipelines: HashMap<String, LocalTransport>,
	verifier: Vec<Shard>,
	verifier_bf16: Vec<Shard>,
}

impl Lab {
	fn new(shape: &Shape, workdir: &Path) -> Result<Self> {
		let root = workdir.join(shape.name);
		let base = root.join("model");
		write_tiny_model(&base, &shape.spec)?;
		let model = ModelDir::open(&base)?;
		let hashes = shape.chunks.iter().map(|r| chunk_hash(&model, *r)).collect::<Result<_>>()?;
		let whole = LayerRange::new(0, shape.spec.layers)?;
		let hashes_one_chunk = vec![chunk_hash(&model, whole)?];
		let load = |format| {
			shape
				.chunks
				.iter()
				.map(|r| Shard::load_as(&model, *r, &Device::Cpu, format))
				.collect::<Result<Vec<_>>>()
		};
		Ok(Lab {
			shape: shape.clone(),
			root,
			verifier: load(F32)?,
			verifier_bf16: load(BF16)?,
			model,
			hashes,
			hashes_one_chunk,
			pipelines: HashMap::new(),
		})
	}

	/// The pipeline named `key`, loaded from `dir` with `layout` on first use.
	fn pipeline(
		&mut self,
		key: &str,
		dir: &Path,
		layout: &[LayerRange],
		format: ComputeFormat,
	) -> Result<&mut LocalTransport> {
		if !self.pipelines.contains_key(key) {
			let model = ModelDir::open(dir)?;
			let shards = layout
				.iter()
				.map(|r| Shard::load_as(&model, *r, &Device::Cpu, format))
				.collect::<Result<Vec<_>>>()?;
			let transport =
				LocalTransport::new(shards)?.with_fingerprints(FingerprintParams::DEFAULT);
			self.pipelines.insert(key.to_string(), transport);
		}
		self.pipelines.get_mut(key).ok_or_else(|| InferenceError::Input("pipeline vanished".into()))
	}

	/// A copy of the model written under `name` by `edit` (once).
	fn copy(
		&self,
		name: &str,
		edit: impl FnOnce(&mut HashMap<String, Tensor>) -> Result<()>,
	) -> Result<PathBuf> {
		let dir = self.root.join(name);
		if dir.join("config.json").is_file() {
			return Ok(dir);
		}
		edited_copy(&self.model, &dir, edit)?;
		Ok(dir)
	}

	/// The record the generator of `variant` claims for `case`, and the matrix it
	/// perturbed.
	fn record(
		&mut self,
		variant: &Variant,
		case: &Case,
		prompt_index: usize,
	) -> Result<(Record, Option<&'static str>)> {
		let perturbed = match variant.generator {
			Generator::Perturbed(_) => Some(MATRICES[prompt_index % MATRICES.len()]),
			_ => None,
		};
		self.generated(variant, case, prompt_index).map(|record| (record, perturbed))
	}

	fn generated(&mut self, variant: &Variant, case: &Case, prompt_index: usize) -> Result<Record> {
		let chunks = self.shape.chunks.clone();
		let layers = self.shape.spec.layers;
		let base = self.model.root().to_path_buf();
		let mid = layers / 2;
		let request = case.request(1);
		let (key, dir, format, one_chunk) = match variant.generator {
			Generator::Honest { format, one_chunk, .. } => {
				(format!("honest-{}-{one_chunk}", format.name()), base, format, one_chunk)
			}
			Generator::Perturbed(share) => {
				let matrix = MATRICES[prompt_index % MATRICES.len()];
				let name = format!("perturbed-{matrix}-{share}");
				let other = self.shape.spec.seed + 1000;
				let noise_spec = TinySpec { seed: other, ..self.shape.spec.clone() };
				let noise_dir = self.root.join("noise");
				if !noise_dir.join("config.json").is_file() {
					write_tiny_model(&noise_dir, &noise_spec)?;
				}
				let noise_model = ModelDir::open(&noise_dir)?;
				let tensor = format!("model.layers.{mid}.{matrix}.weight");
				let dir =
					self.copy(&name, |tensors| perturb(tensors, &tensor, &noise_model, share))?;
				(name, dir, F32, false)
			}
			Generator::SkippedLayer => {
				let dir = self.copy("skipped", |tensors| {
					// A layer whose attention and MLP outputs are zero is the identity.
					for suffix in ["self_attn.o_proj.weight", "mlp.down_proj.weight"] {
						let name = format!("model.layers.{mid}.{suffix}");
						let zero = tensors
							.get(&name)
							.ok_or_else(|| InferenceError::Weights(format!("no {name}")))?
							.zeros_like()?;
						tensors.insert(name, zero);
					}
					Ok(())
				})?;
				("skipped".into(), dir, F32, false)
			}
			Generator::SwappedLayers => {
				// Two layers of one chunk.
				let chunk = chunks.iter().find(|c| c.len() >= 2).copied().unwrap_or(chunks[0]);
				let (a, b) = (chunk.start, chunk.start + 1);
				let dir = self.copy("swapped", |tensors| {
					for name in crate::model_dir::layer_tensor_names(a) {
						let other =
							name.replacen(&format!("layers.{a}."), &format!("layers.{b}."), 1);
						let (x, y) = (tensors.remove(&name), tensors.remove(&other));
						if let (Some(x), Some(y)) = (x, y) {
							tensors.insert(name, y);
							tensors.insert(other, x);
						}
					}
					Ok(())
				})?;
				("swapped".into(), dir, F32, false)
			}
			Generator::OtherModel => {
				let dir = self.root.join("other");
				if !dir.join("config.json").is_file() {
					write_tiny_model(
						&dir,
						&TinySpec { seed: self.shape.spec.seed + 7, ..self.shape.spec.clone() },
					)?;
				}
				("other".into(), dir, F32, false)
			}
			_ => ("honest-f32-false".into(), base, F32, false),
		};
		let layout = if one_chunk { vec![LayerRange::new(0, layers)?] } else { chunks.clone() };
		let hashes = if one_chunk { self.hashes_one_chunk.clone() } else { self.hashes.clone() };
		let one_thread = matches!(variant.generator, Generator::Honest { one_thread: true, .. });
		let config = self.model.config().clone();
		let pipeline = self.pipeline(&key, &dir, &layout, format)?;
		let stages = |compute| GeneratorStages {
			config: &config,
			ranges: &layout,
			weight_hashes: &hashes,
			params: FingerprintParams::DEFAULT,
			compute,
		};
		let run = |pipeline: &mut LocalTransport, request: &GenerationRequest| -> Result<Record> {
			let output = generate(pipeline, request, &Device::Cpu)?;
			let recorders = take(pipeline, request.session)?;
			stages(format.name()).record(recorders, request, &output)
		};
		match variant.generator {
			Generator::Honest { .. } if one_thread => {
				// candle reads the thread count on every call.
				std::env::set_var("RAYON_NUM_THREADS", "1");
				let record = run(pipeline, &request);
				std::env::remove_var("RAYON_NUM_THREADS");
				record
			}
			Generator::Scaled(_) | Generator::CorruptedPosition => {
				let tamper = match variant.generator {
					Generator::Scaled(factor) => Tamper::Scale(factor),
					_ => {
						// Mid-prompt, never a block's last position.
						let mut p = case.prompt.len() / 2;
						if (p + 1).is_multiple_of(FingerprintParams::DEFAULT.block as usize) {
							p -= 1;
						}
						Tamper::CopyPrevious(p.max(1))
					}
				};
				let mut tampering = Tampering { inner: pipeline, tamper, recorder: None };
				let output = generate(&mut tampering, &request, &Device::Cpu)?;
				let tampered = tampering.recorder.take();
				let mut recorders = take(pipeline, request.session)?;
				if let Some(builder) = tampered {
					recorders[0].hidden = builder;
				}
				stages(format.name()).record(recorders, &request, &output)
			}
			Generator::ReplacedToken => {
				let mut record = run(pipeline, &request)?;
				let n = record.generated_tokens.len();
				let at = n / 2;
				let vocab = config.vocab_size as u32;
				let mut token = (record.generated_tokens[at] + 1) % vocab;
				if token == EOS {
					token = (token + 1) % vocab;
				}
				record.generated_tokens[at] = token;
				Ok(record)
			}
			Generator::OtherSeed => {
				let mut other = request.clone();
				other.sampling.seed += 1;
				let mut record = run(pipeline, &other)?;
				record.sampling.seed = request.sampling.seed;
				Ok(record)
			}
			Generator::GreedyForSampled => {
				let mut greedy = request.clone();
				greedy.sampling = SamplingParams::greedy();
				let mut record = run(pipeline, &greedy)?;
				record.sampling = crate::record::RecordSampling::of(&request);
				Ok(record)
			}
			Generator::TruncatedAsEos => {
				// Cut the honest generation at half its length (before any EOS it drew),
				// so that the replaced last token really was not an end of sequence.
				let full = run(pipeline, &request)?;
				let mut short = request.clone();
				short.max_tokens = (full.generated_tokens.len() / 2).max(1);
				let mut record = run(pipeline, &short)?;
				record.sampling.max_tokens = request.max_tokens;
				if let Some(last) = record.generated_tokens.last_mut() {
					*last = EOS;
				}
				record.stop = StopReason::Eos;
				Ok(record)
			}
			_ => run(pipeline, &request),
		}
	}
}

fn take(
	pipeline: &mut LocalTransport,
	session: SessionId,
) -> Result<Vec<crate::pipeline::StageRecorder>> {
	pipeline
		.take_recorders(session)
		.ok_or_else(|| InferenceError::Fingerprint("no fingerprints taken".into()))
}

/// Copies `model` to `dir` with its tensors edited by `edit` (every file rewritten).
fn edited_copy(
	model: &ModelDir,
	dir: &Path,
	edit: impl FnOnce(&mut HashMap<String, Tensor>) -> Result<()>,
) -> Result<()> {
	std::fs::create_dir_all(dir).map_err(|e| InferenceError::io(dir, e))?;
	let mut tensors: HashMap<String, Tensor> = HashMap::new();
	let mut file_of: HashMap<String, PathBuf> = HashMap::new();
	for entry in std::fs::read_dir(model.root()).map_err(|e| InferenceError::io(model.root(), e))? {
		let path = entry.map_err(|e| InferenceError::io(model.root(), e))?.path();
		let name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
		if path.extension().is_some_and(|e| e == "safetensors") {
			let loaded = candle_core::safetensors::load(&path, &Device::Cpu)?;
			for key in loaded.keys() {
				file_of.insert(key.clone(), PathBuf::from(&name));
			}
			tensors.extend(loaded);
		} else {
			std::fs::copy(&path, dir.join(&name)).map_err(|e| InferenceError::io(&path, e))?;
		}
	}
	edit(&mut tensors)?;
	let mut by_file: HashMap<PathBuf, HashMap<String, Tensor>> = HashMap::new();
	for (name, tensor) in tensors {
		let file = file_of
			.get(&name)
			.cloned()
			.ok_or_else(|| InferenceError::Weights(format!("{name} has no file")))?;
		by_file.entry(file).or_default().insert(name, tensor);
	}
	for (file, tensors) in by_file {
		let path = dir.join(file);
		candle_core::safetensors::save(&tensors, &path)
			.map_err(|e| InferenceError::Weights(format!("{}: {e}", path.display())))?;
	}
	Ok(())
}

/// Adds to `name` the same tensor of another model, scaled to `share` of its RMS.
fn perturb(
	tensors: &mut HashMap<String, Tensor>,
	name: &str,
	noise: &ModelDir,
	share: f32,
) -> Result<()> {
	let weight = tensors.get(name).ok_or_else(|| InferenceError::Weights(format!("no {name}")))?;
	let source = candle_core::safetensors::load(noise.file_of(name)?, &Device::Cpu)?;
	let noise = source.get(name).ok_or_else(|| InferenceError::Weights(format!("no {name}")))?;
	let rms = |t: &Tensor| -> Result<f32> { Ok(t.sqr()?.mean_all()?.sqrt()?.to_scalar::<f32>()?) };
	let factor = (rms(weight)? * share / rms(noise)?) as f64;
	let perturbed = (weight + (noise * factor)?)?;
	tensors.insert(name.to_string(), perturbed);
	Ok(())
}

/// A dishonest stage 0.
#[derive(Debug, Clone, Copy)]
enum Tamper {
	/// Multiplies its output.
	Scale(f64),
	/// Replaces the output at this position by the previous position's.
	CopyPrevious(usize),
}

/// Wraps a pipeline; changes stage 0's replies and fingerprints what it sends.
struct Tampering<'a> {
	inner: &'a mut LocalTransport,
	tamper: Tamper,
	recorder: Option<crate::fingerprint::FingerprintBuilder>,
}

impl Transport for Tampering<'_> {
	fn stages(&self) -> usize {
		self.inner.stages()
	}

	fn exchange(&mut self, stage: usize, message: Vec<u8>) -> Result<Vec<u8>> {
		let reply = self.inner.exchange(stage, message)?;
		if stage != 0 || self.inner.stages() < 2 {
			return Ok(reply);
		}
		let decoded = ActivationMessage::decode(&reply, &Device::Cpu)?;
		let Payload::Hidden(hidden) = decoded.payload else { return Ok(reply) };
		let offset = decoded.position_offset as usize;
		let hidden = match self.tamper {
			Tamper::Scale(factor) => (hidden * factor)?,
			Tamper::CopyPrevious(p) if p > offset && p < offset + hidden.dim(1)? => {
				let local = p - offset;
				let before = hidden.narrow(1, 0, local)?;
				let copy = hidden.narrow(1, local - 1, 1)?;
				let rest = hidden.narrow(1, local + 1, hidden.dim(1)? - local - 1)?;
				Tensor::cat(&[&before, &copy, &rest], 1)?
			}
			Tamper::CopyPrevious(_) => hidden,
		};
		if offset == 0 {
			self.recorder =
				Some(crate::fingerprint::FingerprintBuilder::new(FingerprintParams::DEFAULT)?);
		}
		if let Some(recorder) = &mut self.recorder {
			recorder.push(&hidden)?;
		}
		ActivationMessage::hidden(decoded.session, offset, hidden)?.encode()
	}

	fn end_session(&mut self, session: SessionId) {
		self.inner.end_session(session);
	}
}
