//! `nerlab import --model M --out DIR`: a model from elsewhere (a Hugging Face token-classification
//! checkpoint, a PyTorch state dict) written as a nerlab model folder, so a run can start from it
//! with every part kept (`init_from = "DIR"`, `init_head = "keep"`) and every command reads it
//! without the flags that opened it.

use std::path::PathBuf;

use clap::Args;

use crate::infer::open_model;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A Hugging Face token-classification checkpoint (a folder or hf:<repo>) or a PyTorch state
    /// dict (model.pt).
    #[arg(long)]
    pub model: String,
    /// The nerlab model folder to write.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub open: super::eval::OpenArgs,
}

pub fn run(a: &ImportArgs) -> anyhow::Result<()> {
    let opened = open_model(&a.model, &a.open.options(None)?)?;
    let model = &opened.model;
    model.save(&a.out)?;
    println!(
        "{}: {} head over {} labels ({}); start a run from it with init_from = {:?}, init_head = \"keep\"",
        a.out.display(),
        serde_json::to_value(model.spec.head)?
            .as_str()
            .unwrap_or("custom"),
        model.labels.len(),
        model.labels.join(" "),
        a.out.display().to_string()
    );
    Ok(())
}
