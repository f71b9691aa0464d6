//! PyTorch NER modules saved as a raw `state_dict` (`.pt`/`.bin`, or safetensors): an encoder, an
//! optional `nn.LSTM(bidirectional=True)`, an `nn.Linear` emission layer and an optional
//! `torchcrf.CRF` (the pytorch-crf package), such as the korean_ner project's KoELECTRA with a
//! BiLSTM and a CRF. The encoder's `config.json` and tokenizer come from a folder (or the Hub),
//! the labels from a list, and which prefix holds which part from a [`KeyLayout`] (built in:
//! `electra.`, `lstm.`, `classifier.`, `crf.`; a TOML file for `bert.`/`rnn.`/`fc.` and the like).
//!
//! The CRF decodes as pytorch-crf decodes (its start and end scores, every transition allowed);
//! nerlab's IOB2-constrained Viterbi is a switch. The BiLSTM and the CRF run over the units of
//! nerlab's alignment (a word's first sub-word; with one character per token, each character),
//! not over `[CLS]`/`[SEP]` (docs/MODELS.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::align::{AlignMode, CharUnits};
use super::backbone::Backbone;
use super::config::EncoderConfig;
use super::hf::output_order;
use super::ner::{HeadKind, ModelSpec, NerModel};
use super::params::{Checkpoint, canonical_name};

/// KLUE-NER's 13 labels in the order the korean_ner project's classifier outputs them.
pub const KLUE_LABELS: [&str; 13] = [
    "B-DT", "I-DT", "B-LC", "I-LC", "B-OG", "I-OG", "B-PS", "I-PS", "B-QT", "I-QT", "B-TI", "I-TI",
    "O",
];

/// Which key prefix of the state dict holds which part. An empty `lstm` or `crf` means the
/// module has none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyLayout {
    pub encoder: String,
    pub lstm: String,
    pub classifier: String,
    pub crf: String,
}

impl Default for KeyLayout {
    /// The korean_ner project's names.
    fn default() -> Self {
        Self {
            encoder: "electra.".into(),
            lstm: "lstm.".into(),
            classifier: "classifier.".into(),
            crf: "crf.".into(),
        }
    }
}

impl KeyLayout {
    /// Reads a TOML layout (`encoder = "bert."`, `lstm = "rnn."`, `classifier = "fc."`,
    /// `crf = "crf."`); keys it does not give keep the korean_ner names.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the key layout {}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a key layout (encoder, lstm, classifier, crf = \"prefix.\"): {e}",
                path.display()
            )
        })
    }
}

/// Everything needed to open a state dict besides its file.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchSpec {
    /// The encoder's folder: `config.json` and `tokenizer.json` (or `vocab.txt`).
    pub encoder: PathBuf,
    /// The outputs' labels, in output order.
    pub labels: Vec<String>,
    pub layout: KeyLayout,
    /// How KLUE's characters meet the model: one character per token (korean_ner) or KLUE's
    /// sub-word scheme.
    pub char_units: CharUnits,
    /// Forbid IOB2's invalid transitions in the CRF (pytorch-crf allows every one).
    pub constrained: bool,
}

/// A label list: `klue` (korean_ner's order), a file with one label per line, or labels
/// separated by commas.
pub fn read_labels(spec: &str) -> anyhow::Result<Vec<String>> {
    if spec == "klue" {
        return Ok(KLUE_LABELS.map(String::from).to_vec());
    }
    let path = Path::new(spec);
    let labels: Vec<String> = if path.is_file() {
        std::fs::read_to_string(path)
            .with_context(|| format!("reading labels from {}", path.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    } else {
        spec.split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    if labels.is_empty() {
        bail!("{spec}: no labels (give klue, a file with one label per line, or A,B,C)");
    }
    Ok(labels)
}

/// Whether a path is a state-dict file nerlab opens this way.
pub fn is_state_dict(path: &Path) -> bool {
    path.is_file()
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pt" | "pth" | "bin" | "safetensors" | "ckpt")
        )
}

fn read_state_dict(path: &Path) -> anyhow::Result<Vec<(String, Tensor)>> {
    if path.extension().is_some_and(|e| e == "safetensors") {
        Ok(candle_core::safetensors::load(path, &Device::Cpu)
            .with_context(|| format!("reading {}", path.display()))?
            .into_iter()
            .collect())
    } else {
        candle_core::pickle::read_all(path)
            .with_context(|| format!("reading {} (a PyTorch state dict)", path.display()))
    }
}

/// The tensors of one part (a prefix stripped), with the checks that name the key.
struct Part<'a> {
    file: &'a Path,
    prefix: &'a str,
    tensors: HashMap<String, Tensor>,
}

impl Part<'_> {
    fn take(&mut self, name: &str, shape: &[usize]) -> anyhow::Result<Tensor> {
        let key = format!("{}{name}", self.prefix);
        let t = self.tensors.remove(name).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: missing key {key} (expected shape {shape:?})",
                self.file.display()
            )
        })?;
        if t.dims() != shape {
            bail!(
                "{}: {key} has shape {:?}, but {shape:?} fits this model",
                self.file.display(),
                t.dims()
            );
        }
        Ok(t.to_dtype(DType::F32)?)
    }

    fn finish(self) -> anyhow::Result<()> {
        let mut extra: Vec<String> = self
            .tensors
            .keys()
            .map(|k| format!("{}{k}", self.prefix))
            .collect();
        extra.sort();
        match extra.first() {
            Some(k) => bail!(
                "{}: unexpected key {k}{} (nerlab's heads: one bidirectional LSTM layer, a \
                 linear layer, a CRF)",
                self.file.display(),
                if extra.len() > 1 {
                    format!(" and {} more", extra.len() - 1)
                } else {
                    String::new()
                }
            ),
            None => Ok(()),
        }
    }
}

/// A state dict split by the layout: the encoder's tensors (canonical names) and the rest of
/// each part (prefix stripped).
struct Split {
    encoder: HashMap<String, Tensor>,
    lstm: HashMap<String, Tensor>,
    classifier: HashMap<String, Tensor>,
    crf: HashMap<String, Tensor>,
}

fn split(weights: &Path, l: &KeyLayout) -> anyhow::Result<Split> {
    let mut encoder = HashMap::new();
    let mut parts: [HashMap<String, Tensor>; 3] = Default::default();
    let prefixes = [l.lstm.as_str(), l.classifier.as_str(), l.crf.as_str()];
    for (key, t) in read_state_dict(weights)? {
        if let Some(rest) = key.strip_prefix(l.encoder.as_str()) {
            if let Some(name) = canonical_name(rest) {
                encoder.insert(name, t);
            }
            continue;
        }
        match prefixes
            .iter()
            .position(|p| !p.is_empty() && key.starts_with(p))
        {
            Some(i) => {
                parts[i].insert(key[prefixes[i].len()..].to_string(), t);
            }
            None => bail!(
                "{}: unexpected key {key}: it is under none of the layout's prefixes (encoder \
                 {:?}, lstm {:?}, classifier {:?}, crf {:?}); name the parts with a layout file \
                 (--layout, docs/MODELS.md)",
                weights.display(),
                l.encoder,
                l.lstm,
                l.classifier,
                l.crf
            ),
        }
    }
    if encoder.is_empty() {
        bail!(
            "{}: no key starts with the encoder prefix {:?}; give the layout (--layout)",
            weights.display(),
            l.encoder
        );
    }
    let [lstm, classifier, crf] = parts;
    Ok(Split {
        encoder,
        lstm,
        classifier,
        crf,
    })
}

/// The BiLSTM's tensors under nerlab's names, into `out`; returns its width per direction.
fn lstm_tensors(
    weights: &Path,
    prefix: &str,
    tensors: HashMap<String, Tensor>,
    input: usize,
    out: &mut HashMap<String, Tensor>,
) -> anyhow::Result<usize> {
    let Some(hidden) = tensors
        .get("weight_hh_l0")
        .and_then(|t| t.dims().get(1).copied())
    else {
        bail!(
            "{}: missing key {prefix}weight_hh_l0 (the LSTM's other keys are there)",
            weights.display()
        );
    };
    let mut part = Part {
        file: weights,
        prefix,
        tensors,
    };
    let g = 4 * hidden;
    for (suffix, dir) in [("", "forward"), ("_reverse", "backward")] {
        for (name, shape) in [
            ("weight_ih", vec![g, input]),
            ("weight_hh", vec![g, hidden]),
            ("bias_ih", vec![g]),
            ("bias_hh", vec![g]),
        ] {
            let t = part.take(&format!("{name}_l0{suffix}"), &shape)?;
            out.insert(format!("ner.lstm.{dir}.{name}"), t);
        }
    }
    part.finish()?;
    Ok(hidden)
}

/// The emission layer and the CRF under nerlab's names, into `out`, their outputs reordered by
/// `order` (output `order[i]` becomes class `i`).
fn head_tensors(
    weights: &Path,
    l: &KeyLayout,
    split: (HashMap<String, Tensor>, HashMap<String, Tensor>),
    (n, features): (usize, usize),
    order: &[usize],
    out: &mut HashMap<String, Tensor>,
) -> anyhow::Result<()> {
    let (cls_t, crf_t) = split;
    let idx = Tensor::new(
        order
            .iter()
            .map(|&i| i as u32)
            .collect::<Vec<_>>()
            .as_slice(),
        &Device::Cpu,
    )?;
    let mut cls = Part {
        file: weights,
        prefix: &l.classifier,
        tensors: cls_t,
    };
    let w = cls
        .take("weight", &[n, features])
        .with_context(|| format!("{n} labels were given"))?;
    let b = cls.take("bias", &[n])?;
    cls.finish()?;
    out.insert("ner.proj.weight".into(), w.index_select(&idx, 0)?);
    out.insert("ner.proj.bias".into(), b.index_select(&idx, 0)?);
    if crf_t.is_empty() {
        return Ok(());
    }
    let mut crf = Part {
        file: weights,
        prefix: &l.crf,
        tensors: crf_t,
    };
    let start = crf.take("start_transitions", &[n])?;
    let end = crf.take("end_transitions", &[n])?;
    let trans = crf.take("transitions", &[n, n])?;
    crf.finish()?;
    out.insert("ner.crf.start".into(), start.index_select(&idx, 0)?);
    out.insert("ner.crf.end".into(), end.index_select(&idx, 0)?);
    out.insert(
        "ner.crf.transitions".into(),
        trans.index_select(&idx, 0)?.index_select(&idx, 1)?,
    );
    Ok(())
}

/// Opens a state dict as a model: the encoder from `spec.encoder`'s config with the state dict's
/// weights, a BiLSTM when the layout's LSTM keys are there, the emission layer, a CRF when its keys
/// are there. Outputs are reordered so that `O` comes first (every class-indexed tensor with them).
pub fn open(
    weights: &Path,
    spec: &TorchSpec,
    dtype: DType,
    device: &Device,
) -> anyhow::Result<NerModel> {
    let config = EncoderConfig::from_file(&spec.encoder.join("config.json"))?;
    let l = &spec.layout;
    let parts = split(weights, l)?;
    let (has_lstm, has_crf) = (!parts.lstm.is_empty(), !parts.crf.is_empty());
    let mut tensors = parts.encoder;
    let lstm_hidden = if has_lstm {
        lstm_tensors(
            weights,
            &l.lstm,
            parts.lstm,
            config.hidden_size,
            &mut tensors,
        )?
    } else {
        0
    };
    // Shapes are checked first (a wrong label count says so); the missing O after.
    let order = output_order(&spec.labels);
    let has_o = order.is_some();
    let order = order.unwrap_or_else(|| (0..spec.labels.len()).collect());
    let features = if has_lstm {
        2 * lstm_hidden
    } else {
        config.hidden_size
    };
    head_tensors(
        weights,
        l,
        (parts.classifier, parts.crf),
        (spec.labels.len(), features),
        &order,
        &mut tensors,
    )
    .with_context(|| format!("the labels: {}", spec.labels.join(" ")))?;
    if !has_o {
        bail!("the labels have no O ({})", spec.labels.join(" "));
    }
    let labels: Vec<String> = order.iter().map(|&i| spec.labels[i].clone()).collect();
    let checkpoint = Checkpoint {
        path: weights.to_path_buf(),
        tensors,
    };
    let backbone = Backbone::pretrained_with(&spec.encoder, checkpoint, dtype, device, 0)
        .with_context(|| {
            format!(
                "opening {} with {}",
                weights.display(),
                spec.encoder.display()
            )
        })?;
    let head = match (has_lstm, has_crf) {
        (true, true) => HeadKind::BilstmCrf,
        (true, false) => HeadKind::Bilstm,
        (false, true) => HeadKind::Crf,
        (false, false) => HeadKind::Softmax,
    };
    let model_spec = ModelSpec {
        head,
        lstm_hidden: lstm_hidden.max(1),
        constrained: spec.constrained,
        char_units: spec.char_units,
        ..ModelSpec::default()
    };
    // Free text is read as the model was trained: a KLUE model (every type one of KLUE's) one
    // character per token or in KLUE's sub-word scheme, as `char_units` says; others by words.
    let klue = labels
        .iter()
        .filter_map(|l| crate::data::scheme::tag_type(l))
        .all(|t| KLUE_LABELS.iter().any(|k| k.ends_with(&format!("-{t}"))));
    let align = if klue {
        AlignMode::for_format(crate::data::Format::Klue, spec.char_units)
    } else {
        AlignMode::Words
    };
    let model = NerModel::new(backbone, model_spec, labels, align)?;
    model.params().require_loaded(weights)?;
    if let Some(k) = model.params().unused().first() {
        bail!(
            "{}: unexpected key {}{k}: the encoder in {} has no such weight",
            weights.display(),
            l.encoder,
            spec.encoder.join("config.json").display()
        );
    }
    Ok(model)
}
