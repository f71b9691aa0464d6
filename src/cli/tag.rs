//! `nerlab tag --run DIR [TEXT | -]`: tags text with a run's best model and prints one JSON line per
//! input line: `{"text", "spans": [{"type", "start", "end", "text", "confidence"}]}`, offsets in
//! characters.

use std::path::PathBuf;

use clap::Args;

use crate::infer::{load_model, tag_texts};

#[derive(Debug, Args)]
pub struct TagArgs {
    /// A run directory (its best model is used) or a saved model folder.
    #[arg(long)]
    pub run: PathBuf,
    /// Text to tag; `-` or nothing reads lines from standard input.
    pub text: Option<String>,
}

pub fn run(a: &TagArgs) -> anyhow::Result<()> {
    let model = load_model(&a.run)?;
    let lines = super::texts_arg(a.text.as_deref())?;
    for t in tag_texts(&model, &lines)? {
        println!("{}", serde_json::to_string(&t)?);
    }
    Ok(())
}
