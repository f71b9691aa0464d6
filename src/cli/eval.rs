//! `nerlab eval --model M --data CORPUS [--json]`: a model on any corpus, with the same report as
//! `nerlab score`. The model is a run directory (its best model), a saved model folder, or a
//! Hugging Face token-classification checkpoint (a folder or `hf:<repo>`), its labels matched to
//! the corpus's (`--label-map`, `--map-label`).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::data::Format;
use crate::data::hub::Hub;
use crate::data::label_map::LabelMap;
use crate::infer::{OpenOptions, evaluate, open_model};
use crate::model::ner::{Aggregation, Confidence};
use crate::train::sources::load_corpus;

/// How a model's outputs are matched to a corpus's tags, shared by `eval` and `tag`.
#[derive(Debug, Clone, Default, Args)]
pub struct LabelArgs {
    /// A label map: a TOML file with `[labels]` (whole labels, `LABEL_3 = "B-PS"`) and `[types]`
    /// (`PER = "PS"`, `MISC = "O"`) tables. KLUE <-> CoNLL-style types (PS/PER, LC/LOC, OG/ORG,
    /// DT/DATE, TI/TIME, QT/QUANTITY) are matched without one.
    #[arg(long)]
    pub label_map: Option<PathBuf>,
    /// One mapping, FROM=TO (a type, PER=PS or MISC=O, or a whole label, LABEL_3=B-PS); repeatable.
    #[arg(long = "map-label", value_name = "FROM=TO")]
    pub map_label: Vec<String>,
}

impl LabelArgs {
    pub fn map(&self) -> anyhow::Result<LabelMap> {
        LabelMap::from_args(self.label_map.as_deref(), &self.map_label)
    }
}

/// What a PyTorch state dict (`--model model.pt`) needs beside it (docs/MODELS.md).
#[derive(Debug, Clone, Default, Args)]
pub struct TorchArgs {
    /// The state dict's encoder: a folder with config.json and a tokenizer, hf:<repo> or a preset
    /// (default: the state dict's own folder).
    #[arg(long)]
    pub encoder: Option<String>,
    /// The state dict's outputs: klue (KLUE's 13 in korean_ner's order), a file with one label
    /// per line, or A,B,C (default: labels.txt beside the state dict).
    #[arg(long)]
    pub labels: Option<String>,
    /// A TOML key layout naming the prefixes of the encoder, lstm, classifier and crf
    /// (default: electra., lstm., classifier., crf.).
    #[arg(long)]
    pub layout: Option<PathBuf>,
    /// KLUE's characters: characters (one per token, the default for a state dict) or subwords.
    #[arg(long, value_parser = |s: &str| s.parse::<crate::model::align::CharUnits>())]
    pub char_units: Option<crate::model::align::CharUnits>,
    /// Decode the state dict's CRF with IOB2's constraints (pytorch-crf allows every transition).
    #[arg(long)]
    pub constrained_crf: bool,
}

impl TorchArgs {
    pub fn options(&self) -> crate::infer::TorchOptions {
        crate::infer::TorchOptions {
            encoder: self.encoder.clone(),
            labels: self.labels.clone(),
            layout: self.layout.clone(),
            char_units: self.char_units,
            constrained: self.constrained_crf,
        }
    }
}

/// How a model named on the command line is opened, shared by `eval`, `tag` and `import`.
#[derive(Debug, Clone, Default, Args)]
pub struct OpenArgs {
    #[command(flatten)]
    pub labels: LabelArgs,
    #[command(flatten)]
    pub torch: TorchArgs,
    /// Never reach the Hugging Face Hub: hf: models (and datasets) come from the local cache.
    #[arg(long)]
    pub offline: bool,
}

impl OpenArgs {
    /// The options for [`open_model`]; `target`: the corpus's labels the model's are matched to.
    pub fn options(&self, target: Option<Vec<String>>) -> anyhow::Result<OpenOptions> {
        Ok(OpenOptions {
            labels: self.labels.map()?,
            target,
            offline: self.offline,
            torch: self.torch.options(),
        })
    }
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A run directory (its best model), a saved model folder, a Hugging Face
    /// token-classification checkpoint (a folder or hf:<repo>[@revision]), or a PyTorch state
    /// dict (model.pt: see --encoder, --labels, --layout).
    #[arg(long, alias = "run")]
    pub model: String,
    /// The corpus: a path, builtin:demo/dev, klue-ner/dev, wikiann:ko/dev or hf:<repo>:<config>/<split>.
    #[arg(long)]
    pub data: String,
    #[arg(long, value_parser = |s: &str| s.parse::<Format>())]
    pub format: Option<Format>,
    #[command(flatten)]
    pub open: OpenArgs,
    /// Write the predictions here, in the corpus's own format.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// Write each sentence's tokens, tags and class scores here (JSON lines `{"tokens", "tags",
    /// "logits"}`: one
    /// row per token, the emission scores of the unit its tag comes from, null for tokens whose
    /// tag is derived; columns in the model's label order, printed first as `{"labels"}`), for
    /// parity checks against another implementation (scripts/check_hf_export.py).
    #[arg(long)]
    pub emissions: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
    /// The confidence calibration reads for a CRF head: marginal (the CRF's marginal of the tag)
    /// or softmax (of the emission scores alone).
    #[arg(long, default_value = "marginal", value_parser = |s: &str| s.parse::<Confidence>())]
    pub confidence: Confidence,
    /// How a word's tag is read from its sub-words: first (as nerlab and transformers' run_ner
    /// train), average or max (transformers' pipeline aggregations); softmax heads only.
    #[arg(long, default_value = "first", value_parser = |s: &str| s.parse::<Aggregation>())]
    pub aggregation: Aggregation,
    /// Tag with int8 weights: each layer's products quantized per output channel, activations
    /// per row (opt-in; faster on CPUs with AVX-512 VNNI, F1 changes measured in
    /// docs/PERFORMANCE.md).
    #[arg(long)]
    pub int8: bool,
}

pub fn run(a: &EvalArgs) -> anyhow::Result<()> {
    let hub = Hub::from_env(a.open.offline);
    let corpus = load_corpus(&a.data, a.format, &hub)?;
    let options = a
        .open
        .options(Some(corpus.label_set().into_iter().collect()))?;
    let mut opened = open_model(&a.model, &options)?;
    let note = opened.note();
    if !note.is_empty() {
        eprintln!("nerlab eval: {note}");
    }
    opened.model.confidence = a.confidence;
    opened.model.set_aggregation(a.aggregation)?;
    if a.int8 {
        opened.model.quantize_int8()?;
    }
    let model = &opened.model;
    let (report, pred) = evaluate(model, &corpus, 64)?;
    super::say_windowed("nerlab eval", model);
    if let Some(p) = &a.predictions {
        crate::data::write(&corpus.with_tags(pred), p)?;
    }
    if let Some(path) = &a.emissions {
        write_emissions(model, &corpus, path)?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!(
            "{}",
            super::score::render(&report, corpus.format.space_tokens())
        );
    }
    Ok(())
}

/// The `--emissions` file: a header line with the label order, then a line per sentence.
fn write_emissions(
    model: &crate::model::ner::NerModel,
    corpus: &crate::data::Corpus,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let tokens: Vec<Vec<String>> = corpus.sentences.iter().map(|s| s.tokens.clone()).collect();
    let (tagged, logits) = model.tag_with_logits(&tokens, 64, model.align_for(corpus.format))?;
    let file = std::fs::File::create(path)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "{}", serde_json::json!({ "labels": model.classes }))?;
    for ((t, l), s) in tagged.iter().zip(&logits).zip(&corpus.sentences) {
        writeln!(
            w,
            "{}",
            serde_json::json!({ "tokens": s.tokens, "tags": t.tags, "logits": l })
        )?;
    }
    w.flush()?;
    Ok(())
}
