//! `nerlab eval --run DIR --data CORPUS [--json]`: a run's best model on any corpus, with the same
//! report as `nerlab score`.

use std::path::PathBuf;

use clap::Args;

use crate::data::Format;
use crate::data::hub::Hub;
use crate::infer::{evaluate, load_model};
use crate::model::ner::Confidence;
use crate::train::sources::load_corpus;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A run directory (its best model) or a saved model folder.
    #[arg(long)]
    pub run: PathBuf,
    /// The corpus: a path, builtin:demo/dev, klue-ner/dev, wikiann:ko/dev or hf:<repo>:<config>/<split>.
    #[arg(long)]
    pub data: String,
    #[arg(long, value_parser = |s: &str| s.parse::<Format>())]
    pub format: Option<Format>,
    /// Write the predictions here, in the corpus's own format.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    #[arg(long)]
    pub offline: bool,
    #[arg(long)]
    pub json: bool,
    /// The confidence calibration reads for a CRF head: marginal (the CRF's marginal of the tag)
    /// or softmax (of the emission scores alone).
    #[arg(long, default_value = "marginal", value_parser = |s: &str| s.parse::<Confidence>())]
    pub confidence: Confidence,
}

pub fn run(a: &EvalArgs) -> anyhow::Result<()> {
    let mut model = load_model(&a.run)?;
    model.confidence = a.confidence;
    let corpus = load_corpus(&a.data, a.format, &Hub::from_env(a.offline))?;
    let (report, pred) = evaluate(&model, &corpus, 64)?;
    if let Some(p) = &a.predictions {
        crate::data::write(&corpus.with_tags(pred), p)?;
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
