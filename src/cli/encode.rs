//! `nerlab encode --model DIR [--layer L] [--json] TEXT|-`: tokens, ids, offsets, the last hidden
//! state and optionally one layer's attention, for debugging and for comparing with other
//! implementations. `-` reads texts from standard input, one per line (as `nerlab tag` does).

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use clap::Args;
use serde::Serialize;

use crate::model::load_pretrained;

#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// A Hugging Face model folder (config.json, model.safetensors or pytorch_model.bin, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Also print this layer's attention (0-based), (heads x query x key).
    #[arg(long)]
    pub layer: Option<usize>,
    #[arg(long)]
    pub json: bool,
    /// Text to encode; `-` reads standard input, one text per line (one result each).
    pub text: String,
}

#[derive(Debug, Serialize)]
struct Encoded {
    tokens: Vec<String>,
    ids: Vec<u32>,
    offsets: Vec<(usize, usize)>,
    hidden: Vec<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attention: Option<Vec<Vec<Vec<f32>>>>,
}

pub fn run(args: &EncodeArgs) -> anyhow::Result<()> {
    let texts = super::texts_arg(Some(args.text.as_str()))?;
    let model = load_pretrained(&args.model, DType::F32, &Device::Cpu, 0)?;
    let crate::model::TextTokenizer::Hf(tok) = &model.tokenizer else {
        anyhow::bail!("encode needs a Hugging Face tokenizer");
    };
    let layers = model.encoder.config().num_hidden_layers;
    if let Some(l) = args.layer
        && l >= layers
    {
        anyhow::bail!("--layer {l}: the model has layers 0..{layers}");
    }
    for text in &texts {
        let crate::model::tokenize::TextEncoding {
            ids,
            tokens,
            offsets,
        } = tok.encode_text(text)?;
        let n = ids.len();
        let id_t = Tensor::from_vec(ids.clone(), (1, n), &Device::Cpu)?;
        let mask = Tensor::ones((1, n), DType::F32, &Device::Cpu)?;
        let out = model
            .encoder
            .forward_full(&id_t, &mask, false, args.layer.is_some())?;
        let hidden: Vec<Vec<f32>> = out.hidden.squeeze(0)?.to_vec2()?;
        let attention = match args.layer {
            Some(l) => Some(out.attentions[l].squeeze(0)?.to_vec3()?),
            None => None,
        };
        print_encoded(
            &Encoded {
                tokens,
                ids,
                offsets,
                hidden,
                attention,
            },
            args.json,
        )?;
    }
    Ok(())
}

fn print_encoded(e: &Encoded, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(e)?);
        return Ok(());
    }
    println!(
        "{} tokens, hidden size {}",
        e.ids.len(),
        e.hidden.first().map_or(0, Vec::len)
    );
    for (i, (t, id)) in e.tokens.iter().zip(&e.ids).enumerate() {
        let h = &e.hidden[i];
        let head: Vec<String> = h.iter().take(4).map(|x| format!("{x:+.4}")).collect();
        println!(
            "{i:>4}  {t:<16} {id:>7}  {:?}  [{} ...]",
            e.offsets[i],
            head.join(" ")
        );
    }
    Ok(())
}
