//! `nerlab export --run DIR --out DIR [--format hf]`: a run's best model as a Hugging Face
//! token-classification folder (see `model::hf::export`), with a model card (`README.md`): the
//! training corpora, the dev scores of `report.json`, the run's configuration, nerlab's version,
//! and which predictions transformers alone gives.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::infer::load_model;
use crate::model::hf::{Exported, export};
use crate::model::ner::HeadKind;
use crate::train::run_dir::RunDir;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A run directory (its best model is exported) or a saved model folder.
    #[arg(long)]
    pub run: PathBuf,
    /// The folder to write (created; files in it are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// The format: hf (transformers' AutoModelForTokenClassification layout), the only one.
    #[arg(long, default_value = "hf")]
    pub format: String,
}

pub fn run(a: &ExportArgs) -> anyhow::Result<()> {
    if a.format != "hf" {
        anyhow::bail!(
            "--format {}: nerlab exports hf (a transformers folder)",
            a.format
        );
    }
    let model = load_model(&a.run)?;
    let exported = export(&model, &a.out)?;
    let card = model_card(&a.run, &model, &exported);
    std::fs::write(a.out.join("README.md"), card)?;
    println!(
        "{}: {} ({} labels), files: {}, README.md",
        a.out.display(),
        exported.architecture,
        model.labels.len(),
        exported.files.join(", ")
    );
    if !exported.transformers_alone {
        println!(
            "the {} head is not a transformers class: README.md in the folder says how to decode",
            serde_json::to_value(model.spec.head)?
                .as_str()
                .unwrap_or("custom")
        );
    }
    Ok(())
}

/// The folder's README: where the model came from, its scores, and how to use it.
fn model_card(run: &Path, model: &crate::model::ner::NerModel, e: &Exported) -> String {
    let dir = RunDir::open(run).ok();
    let config = dir.as_ref().and_then(|d| d.config().ok());
    let report = dir.as_ref().and_then(RunDir::report);
    let name = run
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "---\nlibrary_name: transformers\npipeline_tag: token-classification\ntags:\n- nerlab\n- ner\n---\n"
    );
    let _ = writeln!(s, "# {name}\n");
    let _ = writeln!(
        s,
        "A named entity recognizer trained with nerlab {} and exported with `nerlab export \
         --format hf`. Architecture: {}. Labels ({}): {}.\n",
        env!("CARGO_PKG_VERSION"),
        e.architecture,
        model.labels.len(),
        model.labels.join(" ")
    );
    if let Some(c) = &config {
        let _ = writeln!(s, "## Training data\n");
        for t in &c.data.train {
            let _ = writeln!(s, "- train: `{t}`");
        }
        if let Some(d) = &c.data.dev {
            let _ = writeln!(s, "- dev: `{d}`");
        }
        let _ = writeln!(s, "- encoder: `{}`\n", c.model.source);
    }
    if let Some(dev) = report.as_ref().and_then(|r| r.get("dev")) {
        let f = |k: &str| {
            dev.get(k)
                .and_then(|v| v.get("f1"))
                .and_then(serde_json::Value::as_f64)
                .map_or("-".to_string(), |x| format!("{:.2}", 100.0 * x))
        };
        let _ = writeln!(
            s,
            "## Dev scores (the best checkpoint, entity level, strict)\n\n| micro F1 | macro F1 | \
             weighted F1 |\n|---|---|---|\n| {} | {} | {} |\n",
            f("micro"),
            f("macro"),
            f("weighted")
        );
        if let Some(per) = dev.get("per_type").and_then(|p| p.as_object()) {
            let _ = writeln!(s, "| type | F1 | support |\n|---|---|---|");
            for (ty, v) in per {
                let _ = writeln!(
                    s,
                    "| {ty} | {:.2} | {} |",
                    100.0
                        * v.get("f1")
                            .and_then(serde_json::Value::as_f64)
                            .unwrap_or(0.0),
                    v.get("support")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0)
                );
            }
            let _ = writeln!(s);
        }
    }
    let _ = writeln!(s, "## Use\n\n{}", usage(model));
    if let Some(c) = &config
        && let Ok(text) = toml::to_string(c)
    {
        let _ = writeln!(
            s,
            "## nerlab configuration\n\n```toml\n{}```",
            text.trim_end().to_string() + "\n"
        );
    }
    s
}

/// What transformers alone does with the folder, and the recipe for the rest.
fn usage(model: &crate::model::ner::NerModel) -> String {
    let load = "```python\nfrom transformers import AutoModelForTokenClassification, AutoTokenizer\n\
                tok = AutoTokenizer.from_pretrained(\"PATH\")\n\
                model = AutoModelForTokenClassification.from_pretrained(\"PATH\").eval()\n\
                enc = tok(words, is_split_into_words=True, return_tensors=\"pt\")\n\
                logits = model(**enc).logits[0]\n\
                # a word's tag: the argmax at its first sub-word (enc.word_ids())\n```\n";
    let crf = "```python\nimport torch\nfrom safetensors.torch import load_file\nfrom torchcrf import CRF  # pip install pytorch-crf\n\
               s = load_file(\"PATH/crf.safetensors\")\n\
               crf = CRF(len(s[\"transitions\"]), batch_first=True)\n\
               crf.load_state_dict(s)\n\
               # emissions: (batch, words, labels), each word's row at its first sub-word\n\
               tags = crf.decode(emissions, mask)\n```\n";
    match model.spec.head {
        HeadKind::Softmax => format!(
            "transformers alone gives nerlab's tags: the same logits (within float error) and \
             the same argmax at each word's first sub-word.\n\n{load}"
        ),
        HeadKind::Crf => format!(
            "**transformers alone gives the emission scores, not nerlab's tags**: nerlab decodes \
             them with a CRF. `crf.safetensors` holds it in pytorch-crf's layout \
             (`start_transitions`, `end_transitions`, `transitions[from, to]`){}; Viterbi over \
             the first-sub-word rows gives nerlab's tags.\n\n{load}\n{crf}",
            if model.spec.constrained {
                ", with IOB2's forbidden transitions already at -10000"
            } else {
                ""
            }
        ),
        HeadKind::Bilstm | HeadKind::BilstmCrf => format!(
            "**transformers alone gives only the encoder** (`AutoModel`; config.json names the \
             bare encoder class): nerlab's head is a bidirectional LSTM over the first-sub-word \
             states of the words, then a linear layer{}. `head.safetensors` holds them under \
             PyTorch's names: `lstm.*` for `nn.LSTM(hidden, {}, batch_first=True, \
             bidirectional=True)` and `classifier.*` for `nn.Linear(2*{}, labels)`{}.\n\n\
             ```python\nstates = AutoModel.from_pretrained(\"PATH\")(**enc).last_hidden_state\n\
             words = states[:, first_subword_positions]  # one row per word\n\
             emissions = classifier(lstm(words)[0])\n```\n{}",
            if model.spec.head.has_crf() {
                " and a CRF"
            } else {
                ""
            },
            model.spec.lstm_hidden,
            model.spec.lstm_hidden,
            if model.spec.head.has_crf() {
                "; `crf.safetensors` the CRF in pytorch-crf's layout"
            } else {
                ""
            },
            if model.spec.head.has_crf() { crf } else { "" }
        ),
    }
}
