//! `nerlab tag --model M [TEXT | -]`: tags text with a model (a run's best, a saved model folder,
//! or a Hugging Face token-classification checkpoint) and prints one JSON line per input line:
//! `{"text", "spans": [{"type", "start", "end", "text", "confidence"}]}`, offsets in characters.

use clap::Args;

use crate::infer::{open_model, tag_texts};

#[derive(Debug, Args)]
pub struct TagArgs {
    /// A run directory (its best model), a saved model folder, a Hugging Face
    /// token-classification checkpoint (a folder or hf:<repo>[@revision]), or a PyTorch state
    /// dict (model.pt: see --encoder, --labels, --layout).
    #[arg(long, alias = "run")]
    pub model: String,
    #[command(flatten)]
    pub open: super::eval::OpenArgs,
    /// How a word's tag is read from its sub-words: first, average or max (softmax heads).
    #[arg(long, default_value = "first", value_parser = |s: &str| s.parse::<crate::model::ner::Aggregation>())]
    pub aggregation: crate::model::ner::Aggregation,
    /// Tag with int8 weights: each layer's products quantized per output channel, activations
    /// per row (opt-in; faster on CPUs with AVX-512 VNNI, F1 changes measured in
    /// docs/PERFORMANCE.md).
    #[arg(long)]
    pub int8: bool,
    /// Text to tag; `-` or nothing reads lines from standard input.
    pub text: Option<String>,
}

pub fn run(a: &TagArgs) -> anyhow::Result<()> {
    let mut opened = open_model(&a.model, &a.open.options(None)?)?;
    opened.model.set_aggregation(a.aggregation)?;
    if a.int8 {
        opened.model.quantize_int8()?;
    }
    let lines = super::texts_arg(a.text.as_deref())?;
    let tagged = tag_texts(&opened.model, &lines)?;
    super::say_windowed("nerlab tag", &opened.model);
    for t in tagged {
        println!("{}", serde_json::to_string(&t)?);
    }
    Ok(())
}
