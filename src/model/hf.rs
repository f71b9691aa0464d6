//! Hugging Face token-classification checkpoints, both ways: opening one
//! (`BertForTokenClassification` and its ELECTRA, RoBERTa and XLM-R twins: an encoder, dropout and
//! one linear `classifier` over every sub-word, the outputs named by `id2label` in `config.json`)
//! as a [`NerModel`] with a softmax head, and writing a nerlab model out as one, in the folder
//! layout `AutoModelForTokenClassification.from_pretrained` and `AutoTokenizer.from_pretrained`
//! read.
//!
//! A word's tag is read at its first sub-word, as transformers' token-classification training
//! script labels words and as its pipeline's `aggregation_strategy="first"` reads them (see
//! docs/MODELS.md). Heads transformers has no class for (a CRF, a BiLSTM) are written beside the
//! folder in PyTorch's own layout, with the recipe in the folder's README.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::align::{AlignMode, Marker};
use super::backbone::{Backbone, BackboneKind};
use super::config::Family;
use super::ner::{HeadKind, ModelSpec, NerModel};
use super::params::Checkpoint;
use super::tokenize::TextTokenizer;
use crate::data::label_map::{LabelMap, Mapped};

/// The token-classification classes nerlab opens and writes, with the prefix of their encoder's
/// weights in the checkpoint.
pub const ARCHITECTURES: [(&str, &str); 5] = [
    ("BertForTokenClassification", "bert"),
    ("ElectraForTokenClassification", "electra"),
    ("RobertaForTokenClassification", "roberta"),
    ("XLMRobertaForTokenClassification", "roberta"),
    ("CamembertForTokenClassification", "roberta"),
];

/// The fields of a Hugging Face `config.json` that describe a token-classification head.
#[derive(Debug, Deserialize)]
struct HeadConfig {
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    id2label: Option<BTreeMap<String, String>>,
    #[serde(default)]
    classifier_dropout: Option<f64>,
    #[serde(default)]
    hidden_dropout_prob: Option<f64>,
}

/// What a token-classification checkpoint's `config.json` says of its head.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenClassifier {
    pub dir: PathBuf,
    pub architecture: String,
    /// The outputs' names, in output order (`id2label`).
    pub labels: Vec<String>,
    /// The dropout before the classifier (`classifier_dropout`, else `hidden_dropout_prob`).
    pub dropout: f64,
}

fn known_architectures() -> String {
    ARCHITECTURES.map(|(a, _)| a).join(", ")
}

fn read_head_config(dir: &Path) -> anyhow::Result<HeadConfig> {
    let path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a model config", path.display()))
}

/// Whether the folder's `config.json` names a `*ForTokenClassification` architecture (known to
/// nerlab or not: [`read_token_classifier`] says which are).
pub fn is_token_classifier(dir: &Path) -> bool {
    read_head_config(dir).is_ok_and(|c| {
        c.architectures
            .iter()
            .any(|a| a.ends_with("ForTokenClassification"))
    })
}

/// Reads and checks the head description of a token-classification checkpoint: a known
/// architecture and `id2label` naming outputs 0..n.
pub fn read_token_classifier(dir: &Path) -> anyhow::Result<TokenClassifier> {
    let config = read_head_config(dir)?;
    let path = dir.join("config.json");
    let Some(architecture) = config
        .architectures
        .iter()
        .find(|a| a.ends_with("ForTokenClassification"))
    else {
        bail!(
            "{}: not a token-classification checkpoint (architectures: [{}]); nerlab opens {}, \
             and trains a run from any BERT, ELECTRA, RoBERTa or XLM-R encoder",
            path.display(),
            config.architectures.join(", "),
            known_architectures()
        );
    };
    if !ARCHITECTURES.iter().any(|(a, _)| a == architecture) {
        bail!(
            "{}: architecture {architecture} is not supported; nerlab opens {}",
            path.display(),
            known_architectures()
        );
    }
    let Some(id2label) = config.id2label else {
        bail!(
            "{}: no id2label: a token-classification checkpoint names its outputs there \
             (\"id2label\": {{\"0\": \"O\", \"1\": \"B-PER\", ...}}), and nerlab cannot guess them",
            path.display()
        );
    };
    let mut by_id = BTreeMap::new();
    for (id, label) in id2label {
        let n: usize = id.parse().map_err(|_| {
            anyhow::anyhow!(
                "{}: id2label key {id:?} is not an output number",
                path.display()
            )
        })?;
        by_id.insert(n, label);
    }
    if by_id.keys().copied().ne(0..by_id.len()) {
        bail!(
            "{}: id2label must name outputs 0..{} once each (it has {:?})",
            path.display(),
            by_id.len(),
            by_id.keys().collect::<Vec<_>>()
        );
    }
    Ok(TokenClassifier {
        dir: dir.to_path_buf(),
        architecture: architecture.clone(),
        labels: by_id.into_values().collect(),
        dropout: config
            .classifier_dropout
            .or(config.hidden_dropout_prob)
            .unwrap_or(0.1),
    })
}

/// The checkpoint's classifier (`classifier.weight`, `classifier.bias`), taken out of `checkpoint`
/// and checked against the number of labels.
fn take_classifier(
    checkpoint: &mut Checkpoint,
    labels: usize,
    dir: &Path,
) -> anyhow::Result<(Tensor, Tensor)> {
    let mut take = |name: &str| {
        checkpoint.tensors.remove(name).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no tensor {name} (a token-classification checkpoint's head)",
                checkpoint.path.display()
            )
        })
    };
    let (w, b) = (take("classifier.weight")?, take("classifier.bias")?);
    if w.dims().first() != Some(&labels) || b.dims() != [labels] {
        bail!(
            "{}: config.json's id2label names {labels} outputs but classifier.weight has shape \
             {:?} and classifier.bias {:?}",
            dir.display(),
            w.dims(),
            b.dims()
        );
    }
    Ok((w, b))
}

/// Opens a token-classification checkpoint as a model with a softmax head, its labels matched to
/// `target` (a corpus's tags; `None` keeps the checkpoint's types) through `map`. The outputs are
/// reordered so that `O` comes first, as nerlab's heads have it.
pub fn open(
    dir: &Path,
    map: &LabelMap,
    target: Option<&[String]>,
    dtype: DType,
    device: &Device,
) -> anyhow::Result<(NerModel, Mapped)> {
    let head = read_token_classifier(dir)?;
    let mapped = map
        .resolve(&head.labels, target)
        .with_context(|| format!("{}", dir.display()))?;
    let Some(order) = output_order(&mapped.tags) else {
        bail!(
            "{}: no output is O (labels: {}); map one to O with --map-label",
            dir.display(),
            head.labels.join(" ")
        );
    };
    let order: Vec<u32> = order.into_iter().map(|i| i as u32).collect();
    let labels: Vec<String> = order
        .iter()
        .map(|&i| mapped.tags[i as usize].clone())
        .collect();
    let mut checkpoint = Checkpoint::from_dir(dir)?;
    let (w, b) = take_classifier(&mut checkpoint, head.labels.len(), dir)?;
    let index = Tensor::new(order.as_slice(), &Device::Cpu)?;
    checkpoint
        .tensors
        .insert("ner.proj.weight".into(), w.index_select(&index, 0)?);
    checkpoint
        .tensors
        .insert("ner.proj.bias".into(), b.index_select(&index, 0)?);
    let backbone = Backbone::pretrained_with(dir, checkpoint, dtype, device, 0)
        .with_context(|| format!("opening {}", dir.display()))?;
    let spec = ModelSpec {
        head: HeadKind::Softmax,
        head_dropout: head.dropout,
        ..ModelSpec::default()
    };
    let model = NerModel::new(backbone, spec, labels, AlignMode::Words)?;
    model.params().require_loaded(dir)?;
    Ok((model, mapped))
}

/// The order in which [`open`] puts a checkpoint's outputs: its first `O`, then the rest as
/// they were (`None` without an `O`). Output `order[i]` of the checkpoint is class `i`.
pub fn output_order(tags: &[String]) -> Option<Vec<usize>> {
    let o = tags.iter().position(|t| t == "O")?;
    Some(
        std::iter::once(o)
            .chain((0..tags.len()).filter(|&i| i != o))
            .collect(),
    )
}

/// The classifier of a token-classification checkpoint with its outputs' labels matched to a
/// training corpus's, for a run that fine-tunes from it: `(weight, bias, labels)`, or why the
/// head cannot be kept.
pub fn classifier_for_training(
    dir: &Path,
    map: &LabelMap,
    target: &[String],
) -> anyhow::Result<(Tensor, Tensor, Vec<String>)> {
    let head = read_token_classifier(dir)?;
    let mapped = map.resolve(&head.labels, Some(target))?;
    let mut checkpoint = Checkpoint::from_dir(dir)?;
    let (w, b) = take_classifier(&mut checkpoint, head.labels.len(), dir)?;
    Ok((w, b, mapped.tags))
}

/// How a nerlab model is written out: the transformers class and the prefix of its encoder
/// weights.
fn architecture_of(model: &NerModel) -> anyhow::Result<(&'static str, &'static str)> {
    let config = model.encoder().config();
    let name = match (config.model_type.as_str(), config.family()) {
        ("xlm-roberta", _) => "XLMRobertaForTokenClassification",
        ("camembert", _) => "CamembertForTokenClassification",
        (_, Family::Roberta) => "RobertaForTokenClassification",
        (_, Family::Electra) => "ElectraForTokenClassification",
        ("nerlab-char", _) => bail!(
            "the character model has no Hugging Face tokenizer or class: export a run trained \
             on a pretrained encoder (BERT, ELECTRA, RoBERTa, XLM-R)"
        ),
        _ => "BertForTokenClassification",
    };
    let prefix = ARCHITECTURES
        .iter()
        .find(|(a, _)| *a == name)
        .map(|(_, p)| *p)
        .unwrap_or("bert");
    Ok((name, prefix))
}

/// What [`export`] wrote, for the command's summary and the model card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub architecture: String,
    /// Files written, relative to the folder.
    pub files: Vec<String>,
    /// Whether transformers alone gives nerlab's tags (a softmax head).
    pub transformers_alone: bool,
}

/// Writes `model` to `out` as a transformers token-classification folder: `config.json`
/// (`architectures`, `id2label`, `label2id` and the encoder's fields), `model.safetensors` under
/// transformers' names, the tokenizer files; a CRF's scores in `crf.safetensors` and a BiLSTM
/// head in `head.safetensors` (PyTorch's `nn.LSTM`/`nn.Linear` names). The model card
/// (`README.md`) is the caller's to write.
pub fn export(model: &NerModel, out: &Path) -> anyhow::Result<Exported> {
    if model.spec.prompt || model.spec.marker != Marker::None {
        bail!(
            "prompt label words and MANER's markers read the model through added tokens that \
             transformers' token-classification classes do not have; export a run with a \
             softmax, CRF, BiLSTM or BiLSTM-CRF head and no method"
        );
    }
    let BackboneKind::Pretrained { .. } = model.backbone.kind else {
        architecture_of(model)?;
        bail!("only models on a pretrained encoder can be exported");
    };
    let (architecture, prefix) = architecture_of(model)?;
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = model.labels.iter().find(|l| !seen.insert(l.as_str())) {
        bail!("the label {dup} names two outputs; transformers' label2id cannot hold that");
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let lstm = model.spec.head.has_lstm();
    let mut encoder = HashMap::new();
    let mut head = HashMap::new();
    let mut crf = HashMap::new();
    let crf_scores = model.crf_scores()?;
    for (name, tensor) in model.params().tensors() {
        let t = tensor.to_dtype(DType::F32)?.contiguous()?;
        if let Some(rest) = name.strip_prefix("ner.proj.") {
            let key = format!("classifier.{rest}");
            if lstm {
                head.insert(key, t);
            } else {
                encoder.insert(key, t);
            }
        } else if let Some(rest) = name.strip_prefix("ner.lstm.") {
            head.insert(format!("lstm.{}", torch_lstm_name(rest)?), t);
        } else if name.starts_with("ner.crf.") {
            // Written with the constraints folded in, below.
        } else if name.starts_with("cls.") || name.starts_with("embeddings.extra_") {
            // The MLM head and added rows take no part in token classification.
        } else {
            encoder.insert(format!("{prefix}.{name}"), t);
        }
    }
    if let Some((start, end, transitions)) = crf_scores {
        crf.insert("start_transitions".to_string(), start);
        crf.insert("end_transitions".to_string(), end);
        crf.insert("transitions".to_string(), transitions);
    }
    let mut files = vec!["config.json".to_string()];
    for (name, tensors) in [
        ("model.safetensors", &encoder),
        ("head.safetensors", &head),
        ("crf.safetensors", &crf),
    ] {
        if name == "model.safetensors" || !tensors.is_empty() {
            save_shared(tensors, &out.join(name))?;
            files.push(name.into());
        }
    }
    let config = hf_config(model, architecture, lstm)?;
    std::fs::write(
        out.join("config.json"),
        serde_json::to_string_pretty(&config)? + "\n",
    )?;
    files.extend(write_tokenizer(model, out)?);
    Ok(Exported {
        architecture: if lstm {
            format!("{architecture} (encoder only; BiLSTM head in head.safetensors)")
        } else {
            architecture.to_string()
        },
        files,
        transformers_alone: model.spec.head == HeadKind::Softmax,
    })
}

/// Writes tensors for others to read: safetensors' writer leaves the file readable by its owner
/// only (mode 0600), which a folder meant for sharing should not be.
fn save_shared(tensors: &HashMap<String, Tensor>, path: &Path) -> anyhow::Result<()> {
    candle_core::safetensors::save(tensors, path)
        .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

/// PyTorch's `nn.LSTM(bidirectional=True)` name of a nerlab LSTM tensor
/// (`forward.weight_ih` -> `weight_ih_l0`, `backward.bias_hh` -> `bias_hh_l0_reverse`).
fn torch_lstm_name(name: &str) -> anyhow::Result<String> {
    let (dir, rest) = name
        .split_once('.')
        .ok_or_else(|| anyhow::anyhow!("unexpected LSTM tensor {name}"))?;
    Ok(match dir {
        "forward" => format!("{rest}_l0"),
        "backward" => format!("{rest}_l0_reverse"),
        _ => bail!("unexpected LSTM tensor {name}"),
    })
}

/// transformers' `config.json` for the export: the encoder's fields, the class and the labels.
fn hf_config(
    model: &NerModel,
    architecture: &str,
    lstm: bool,
) -> anyhow::Result<serde_json::Value> {
    let mut config = serde_json::to_value(model.encoder().config())?;
    let obj = config
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("encoder config is not an object"))?;
    if obj
        .get("model_type")
        .and_then(|v| v.as_str())
        .is_none_or(str::is_empty)
    {
        obj.insert("model_type".into(), "bert".into());
    }
    if obj
        .get("embedding_size")
        .is_some_and(serde_json::Value::is_null)
    {
        obj.remove("embedding_size");
    }
    let id2label: serde_json::Map<String, serde_json::Value> = model
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), l.clone().into()))
        .collect();
    let label2id: serde_json::Map<String, serde_json::Value> = model
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), i.into()))
        .collect();
    let class = if lstm {
        architecture.replace("ForTokenClassification", "Model")
    } else {
        architecture.to_string()
    };
    obj.insert("architectures".into(), serde_json::json!([class]));
    obj.insert("id2label".into(), id2label.into());
    obj.insert("label2id".into(), label2id.into());
    obj.insert("classifier_dropout".into(), model.spec.head_dropout.into());
    obj.insert("torch_dtype".into(), "float32".into());
    obj.insert(
        "nerlab".into(),
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "head": model.spec.head,
            "constrained_crf": model.spec.head.has_crf() && model.spec.constrained,
        }),
    );
    Ok(config)
}

/// Copies the tokenizer (`tokenizer.json`, or `vocab.txt`) and writes the `tokenizer_config.json`
/// AutoTokenizer needs when the model had none: a fast tokenizer with the model's special tokens.
fn write_tokenizer(model: &NerModel, out: &Path) -> anyhow::Result<Vec<String>> {
    let TextTokenizer::Hf(_) = &model.backbone.tokenizer else {
        bail!("the model has no Hugging Face tokenizer");
    };
    let tokenizer = &model.backbone.tokenizer_files;
    anyhow::ensure!(
        !tokenizer.is_empty(),
        "the model's tokenizer files are unknown"
    );
    let mut files = tokenizer.write(out)?;
    if !tokenizer.has("tokenizer_config.json") {
        let tok = &model.backbone.tokenizer;
        let s = tok.specials();
        let mut config = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": model.max_tokens(),
            "cls_token": tok.token_text(s.cls),
            "sep_token": tok.token_text(s.sep),
            "pad_token": tok.token_text(s.pad),
            "unk_token": tok.token_text(s.unk),
        });
        if let Some(m) = s.mask {
            config["mask_token"] = tok.token_text(m).into();
        }
        std::fs::write(
            out.join("tokenizer_config.json"),
            serde_json::to_string_pretty(&config)? + "\n",
        )?;
        files.push("tokenizer_config.json".into());
    }
    Ok(files)
}
