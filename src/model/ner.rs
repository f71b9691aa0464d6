//! The NER model: a backbone, the units of each sentence (see `align.rs`), and a head.
//!
//! Heads: a linear softmax classifier, a BiLSTM under it, a CRF on top, or both; multi-sample
//! dropout (Inoue 2019) averages the loss over K dropout masks of the head input. Methods:
//!
//! - **MANER** (Mask Augmented NER): a marker before every word, the word's label predicted at the
//!   marker; the marker is the tokenizer's mask token, or for the paper's control a fresh, untrained
//!   added token. Its "baseline 2" (`word_mask_prob`) instead replaces words by the mask at training.
//! - **Prompt label words**: one added token per entity type plus `O` (`[PER]`, `[LOC]`, ..., the
//!   same for every language), initialized from the mean embedding of the type name's subwords; a
//!   unit's class is scored through the MLM head against those tokens only. Classes are entity
//!   types (IO): a run of units of one type becomes `B-X I-X ...`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use candle_core::{D, DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::align::{AlignMode, Alignment, CharUnits, Marker, align, best_window, expand, windows};
use super::backbone::{Backbone, BackboneKind};
use super::batch::{Batch, Example, examples};
use super::crf::Crf;
use super::encoder::{Encoder, linear};
use super::lstm::BiLstm;
use super::mlm::MlmHead;
use super::ops::{Linear, dropout, log_softmax, softmax};
use super::params::{Checkpoint, Params, Policy};
use super::tokenize::TextTokenizer;
use crate::data::scheme::tag_type;
use crate::rng::SplitMix64;

/// The classifier on top of the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    #[default]
    Softmax,
    Bilstm,
    Crf,
    BilstmCrf,
}

impl HeadKind {
    pub fn has_lstm(self) -> bool {
        matches!(self, Self::Bilstm | Self::BilstmCrf)
    }

    pub fn has_crf(self) -> bool {
        matches!(self, Self::Crf | Self::BilstmCrf)
    }
}

crate::choices!(HeadKind, "head":
    Softmax = "softmax" | "linear", Bilstm = "bilstm" | "lstm", Crf = "crf",
    BilstmCrf = "bilstm-crf" | "lstm-crf",
);

/// What a model started from a saved one ([`NerModel::init_from`]) does with that model's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitHead {
    /// Classes (labels, or prompt label words) both label sets have keep their trained weights;
    /// classes new to the model are initialized as in a fresh model.
    #[default]
    Remap,
    /// The saved head and label set as they are: the new data may not have a type the saved
    /// model lacks.
    Keep,
    /// Only the encoder is taken; the head starts fresh.
    Fresh,
}

crate::choices!(InitHead, "head policy": Remap = "remap", Keep = "keep", Fresh = "fresh");

/// Tensors indexed by the head's classes (rows; the CRF's transitions by rows and columns) and
/// by the added vocabulary rows (prompt tokens, MANER's fresh marker).
const CLASS_TENSORS: [&str; 5] = [
    "ner.proj.weight",
    "ner.proj.bias",
    "ner.crf.transitions",
    "ner.crf.start",
    "ner.crf.end",
];
const ADDED_ROW_TENSORS: [&str; 2] = [
    "embeddings.extra_word_embeddings.weight",
    "cls.predictions.extra_bias",
];

/// The classes a head over `labels` predicts: the labels, or with prompt label words `O` and the
/// entity types.
fn classes_of(spec: &ModelSpec, labels: &[String]) -> Vec<String> {
    if !spec.prompt {
        return labels.to_vec();
    }
    let mut c = vec!["O".to_string()];
    c.extend(
        labels
            .iter()
            .filter_map(|l| tag_type(l))
            .map(String::from)
            .collect::<std::collections::BTreeSet<_>>(),
    );
    c
}

/// What each added vocabulary row stands for: the prompt token of a class, then the marker.
fn added_row_keys(spec: &ModelSpec, classes: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = if spec.prompt {
        classes.iter().map(|c| format!("class:{c}")).collect()
    } else {
        Vec::new()
    };
    if spec.marker == Marker::Fresh {
        keys.push("marker".into());
    }
    keys
}

/// Copies into `target` (rows keyed by `new`) the rows of `source` (keyed by `old`) whose keys
/// both have; with `square`, a (keys, keys) matrix by rows and columns.
fn copy_rows(
    target: &candle_core::Var,
    source: &Tensor,
    old: &[String],
    new: &[String],
    square: bool,
) -> anyhow::Result<()> {
    let src: Vec<f32> = source.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let mut dst: Vec<f32> = target
        .as_tensor()
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let pos = |key: &String| old.iter().position(|k| k == key);
    if old.is_empty() || new.is_empty() {
        return Ok(());
    }
    if !src.len().is_multiple_of(old.len()) {
        bail!("{} values are not {} rows", src.len(), old.len());
    }
    if square {
        let (n, m) = (new.len(), old.len());
        for (i, a) in new.iter().enumerate() {
            for (j, b) in new.iter().enumerate() {
                if let (Some(oi), Some(oj)) = (pos(a), pos(b)) {
                    dst[i * n + j] = src[oi * m + oj];
                }
            }
        }
    } else {
        let width = src.len() / old.len();
        if dst.len() != width * new.len() {
            bail!("cannot map rows of width {width} onto {} rows", new.len());
        }
        for (i, key) in new.iter().enumerate() {
            if let Some(o) = pos(key) {
                dst[i * width..(i + 1) * width].copy_from_slice(&src[o * width..(o + 1) * width]);
            }
        }
    }
    let t = target.as_tensor();
    target.set(&Tensor::from_vec(dst, t.shape(), t.device())?.to_dtype(t.dtype())?)?;
    Ok(())
}

/// MANER's baseline 2 default: the probability of replacing a word by one mask token. The
/// paper's value could not be read here; 0.15 is BERT's masking rate (docs/METHODS.md).
pub const MANER_WORD_MASK_PROB: f64 = 0.15;

fn d_one() -> usize {
    1
}
fn d_drop() -> f64 {
    0.1
}
fn d_lstm() -> usize {
    256
}
fn d_true() -> bool {
    true
}

/// The file that makes a folder a saved nerlab model (its description; see [`NerModel::save`]).
/// Every reader and writer of model folders names it through this constant.
pub const MODEL_FILE: &str = "nerlab-model.json";

/// Everything about a model except its weights; saved as [`MODEL_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    #[serde(default)]
    pub head: HeadKind,
    /// MANER's marker before every word.
    #[serde(default)]
    pub marker: Marker,
    /// MANER's baseline 2: probability of replacing a word by the mask token at training.
    #[serde(default)]
    pub word_mask_prob: f64,
    /// Prompt label words through the MLM head.
    #[serde(default)]
    pub prompt: bool,
    /// Words whose subword embeddings initialize each prompt token, by entity type.
    #[serde(default)]
    pub label_words: BTreeMap<String, String>,
    /// Prompt label words on a pretrained model without an MLM head: initialize one freshly
    /// (otherwise such a model is refused).
    #[serde(default)]
    pub fresh_mlm_head: bool,
    /// Multi-sample dropout: dropout masks per step (1 = plain dropout).
    #[serde(default = "d_one")]
    pub msd_samples: usize,
    /// Dropout on the head's input.
    #[serde(default = "d_drop")]
    pub head_dropout: f64,
    #[serde(default = "d_lstm")]
    pub lstm_hidden: usize,
    /// Forbid invalid IOB2 transitions in the CRF.
    #[serde(default = "d_true")]
    pub constrained: bool,
    /// What multi-sample dropout averages over its masks.
    #[serde(default)]
    pub msd_average: MsdAverage,
    /// How a character-level corpus (KLUE) is aligned to the model's subwords.
    #[serde(default)]
    pub char_units: CharUnits,
    /// Longest window in tokens, special tokens included (0: the encoder's limit); longer
    /// sentences are cut into overlapping windows.
    #[serde(default)]
    pub max_length: usize,
}

/// What multi-sample dropout (Inoue 2019) averages over its K dropout masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MsdAverage {
    /// The class scores, then one loss (the KLUE BiLSTM-CRF source's way).
    #[default]
    Logits,
    /// The K losses (Inoue's paper).
    Loss,
}

crate::choices!(MsdAverage, "multi-sample dropout average":
    Logits = "logits", Loss = "loss" | "losses",
);

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            head: HeadKind::Softmax,
            marker: Marker::None,
            word_mask_prob: 0.0,
            prompt: false,
            label_words: BTreeMap::new(),
            fresh_mlm_head: false,
            msd_samples: 1,
            head_dropout: 0.1,
            lstm_hidden: 256,
            constrained: true,
            msd_average: MsdAverage::Logits,
            char_units: CharUnits::Subwords,
            max_length: 0,
        }
    }
}

/// The natural word a type code stands for, to initialize its prompt token: nerlab's default
/// for every type of the shipped corpora ([`known_label_word`]), else the code in lower case.
pub fn default_label_word(ty: &str) -> String {
    known_label_word(ty).map_or_else(
        || ty.to_lowercase().replace(['_', '-', '/'], " "),
        str::to_string,
    )
}

/// nerlab's label word for a type code of a shipped corpus (KLUE, KMOU, WikiANN, MasakhaNER,
/// MultiCoNER I and II coarse and fine types). A type means the same in every language, so one
/// code has one word everywhere, and codes of different corpora for one notion (PER, PS) share
/// it; distinct types of one corpus get distinct words, so no two prompt tokens start equal.
pub fn known_label_word(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "O" => "other",
        // Coarse types (KLUE, KMOU, WikiANN, MasakhaNER, MultiCoNER).
        "PER" | "PS" | "PERSON" => "person",
        "LOC" | "LC" | "LOCATION" => "location",
        "ORG" | "OG" | "ORGANIZATION" => "organization",
        "DT" | "DATE" | "DAT" => "date",
        "TI" | "TIME" | "TIM" => "time",
        "QT" | "QUANTITY" | "NOH" => "quantity",
        "MISC" | "POH" => "miscellaneous",
        "MNY" => "money",
        "PNT" => "percent",
        "DUR" => "duration",
        "GRP" => "group",
        "CORP" => "corporation",
        "CW" => "creative work",
        "PROD" => "product",
        "MED" => "medical",
        // MultiCoNER II fine types: location.
        "Facility" => "facility",
        "HumanSettlement" => "city",
        "Station" => "station",
        "OtherLOC" => "other place",
        // Creative work.
        "VisualWork" => "film",
        "MusicalWork" => "song",
        "WrittenWork" => "book",
        "ArtWork" => "painting",
        "Software" => "software",
        "OtherCW" => "other work",
        // Group.
        "MusicalGRP" => "band",
        "PublicCorp" => "public company",
        "PrivateCorp" => "private company",
        "OtherCORP" => "other company",
        "AerospaceManufacturer" => "aircraft maker",
        "SportsGRP" => "sports team",
        "CarManufacturer" => "car maker",
        "TechCORP" => "technology company",
        // Person.
        "Scientist" => "scientist",
        "Artist" => "artist",
        "Athlete" => "athlete",
        "Politician" => "politician",
        "Cleric" => "priest",
        "SportsManager" => "coach",
        "OtherPER" => "other person",
        // Product.
        "Clothing" => "clothing",
        "Vehicle" => "vehicle",
        "Food" => "food",
        "Drink" => "drink",
        "OtherPROD" => "other product",
        // Medical.
        "Medication/Vaccine" => "medicine",
        "MedicalProcedure" => "surgery",
        "AnatomicalStructure" => "organ",
        "Symptom" => "symptom",
        "Disease" => "disease",
        _ => return None,
    })
}

/// Saved next to the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedModel {
    format: u32,
    spec: ModelSpec,
    /// BIO labels (the tags a model writes).
    labels: Vec<String>,
    align: AlignMode,
    backbone: BackboneKind,
}

/// The description of the model saved in `dir`.
fn read_saved(dir: &Path) -> anyhow::Result<SavedModel> {
    let meta = dir.join(MODEL_FILE);
    serde_json::from_str(
        &std::fs::read_to_string(&meta).with_context(|| format!("reading {}", meta.display()))?,
    )
    .with_context(|| format!("{}: not a nerlab model description", meta.display()))
}

/// Attention of one sentence: subword texts, their predicted tags, (layer, head, query, key).
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionView {
    pub tokens: Vec<String>,
    pub token_tags: Vec<String>,
    pub weights: Vec<Vec<Vec<Vec<f32>>>>,
}

/// A unit's predicted class and its probability.
pub type UnitPrediction = (u32, f32);

/// One token's predicted tag and the model's probability for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tagged {
    pub tags: Vec<String>,
    pub confidence: Vec<f32>,
}

/// Which probability of a predicted tag a CRF model reports as its confidence (calibration reads
/// it). Softmax heads have only the emission softmax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    /// The CRF's marginal probability of the tag at that position (forward-backward).
    #[default]
    Marginal,
    /// The softmax of the position's emission scores, the CRF's transitions left out.
    Softmax,
}

crate::choices!(Confidence, "confidence":
    Marginal = "marginal" | "crf-marginal", Softmax = "softmax" | "emission-softmax",
);

/// How a word's tag is read from its sub-words when it has several (transformers' pipeline's
/// `aggregation_strategy`): the first sub-word's (what nerlab trains), the class with the highest
/// softmax score averaged over the sub-words, or the class of the sub-word with the single
/// highest score. Applies to softmax heads on word-level input (not a CRF's path, prompt label
/// words, MANER's markers or KLUE's sub-word scheme, where `first` is used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    #[default]
    First,
    Average,
    Max,
}

crate::choices!(Aggregation, "aggregation": First = "first", Average = "average", Max = "max");

/// A word's class and confidence from its sub-words' class scores, as `how` aggregates them.
fn aggregate(rows: &[&[f32]], how: Aggregation) -> (u32, f32) {
    let probs: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| {
            let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = r.iter().map(|x| (x - m).exp()).collect();
            let z: f32 = e.iter().sum();
            e.into_iter().map(|x| x / z).collect()
        })
        .collect();
    let argmax = |p: &[f32]| {
        p.iter()
            .enumerate()
            .fold((0u32, f32::NEG_INFINITY), |best, (i, &x)| {
                if x > best.1 { (i as u32, x) } else { best }
            })
    };
    match how {
        Aggregation::Average => {
            let n = probs.len().max(1) as f32;
            let width = probs.first().map_or(0, Vec::len);
            let mean: Vec<f32> = (0..width)
                .map(|c| probs.iter().map(|p| p[c]).sum::<f32>() / n)
                .collect();
            argmax(&mean)
        }
        Aggregation::Max | Aggregation::First => probs
            .iter()
            .take(if how == Aggregation::First {
                1
            } else {
                usize::MAX
            })
            .map(|p| argmax(p))
            .fold(
                (0, f32::NEG_INFINITY),
                |best, x| if x.1 > best.1 { x } else { best },
            ),
    }
}

/// The class scores of a window's units: (unit, scores).
type UnitScores = Vec<(usize, Vec<f32>)>;

/// Class scores per token of each sentence: the emission row of the unit a token's label comes
/// from, for tokens that carry a unit's own label.
pub type TokenLogits = Vec<Vec<Option<Vec<f32>>>>;

/// A NER model ready to train or tag.
#[derive(Debug, Clone)]
pub struct NerModel {
    pub spec: ModelSpec,
    /// The confidence tagging reports for a CRF head (not saved: a choice of analysis).
    pub confidence: Confidence,
    /// How a word's tag is read from its sub-words at tagging (not saved; see [`Aggregation`]).
    pub aggregation: Aggregation,
    /// The BIO tag set (`O` first).
    pub labels: Vec<String>,
    /// What the head predicts: `labels`, or with prompt label words `O` and the entity types.
    pub classes: Vec<String>,
    pub align: AlignMode,
    pub backbone: Backbone,
    mlm: Option<MlmHead>,
    lstm: Option<BiLstm>,
    proj: Option<Linear>,
    crf: Option<Crf>,
    marker_id: Option<u32>,
    /// Index of the first prompt token among the added tokens.
    prompt_offset: usize,
    /// Sentences tagged in several windows (longer than the model's positions) since the count
    /// was last taken: callers say so once ([`take_windowed`](Self::take_windowed)).
    windowed: Arc<AtomicUsize>,
}

/// The BIO tag set of some tags: `O`, then `B-X`, `I-X` for every type, sorted by type.
pub fn bio_labels<'a>(tags: impl Iterator<Item = &'a str>) -> Vec<String> {
    let types: std::collections::BTreeSet<&str> = tags.filter_map(tag_type).collect();
    let mut labels = vec!["O".to_string()];
    for ty in types {
        labels.push(format!("B-{ty}"));
        labels.push(format!("I-{ty}"));
    }
    labels
}

impl NerModel {
    /// Builds a model over a backbone for the given BIO label set.
    pub fn new(
        backbone: Backbone,
        spec: ModelSpec,
        labels: Vec<String>,
        align: AlignMode,
    ) -> anyhow::Result<Self> {
        if spec.prompt && spec.head != HeadKind::Softmax {
            bail!("prompt label words score through the MLM head; use the softmax head with them");
        }
        if spec.marker != Marker::None && align.char_level() {
            bail!(
                "MANER marks words; it needs a word-level corpus, not a character-level one (KLUE)"
            );
        }
        if labels.first().map(String::as_str) != Some("O") {
            bail!("the label set must start with O");
        }
        let mut backbone = backbone;
        let classes = classes_of(&spec, &labels);

        // Added vocabulary rows: prompt tokens, then MANER's fresh marker.
        let mut added: Vec<Vec<f32>> = Vec::new();
        if spec.prompt {
            for class in &classes {
                let word = spec
                    .label_words
                    .get(class)
                    .cloned()
                    .unwrap_or_else(|| default_label_word(class));
                let ids: Vec<u32> = word
                    .split_whitespace()
                    .map(|w| backbone.tokenizer.encode_word(w))
                    .collect::<anyhow::Result<Vec<_>>>()?
                    .into_iter()
                    .flatten()
                    .map(|p| p.id)
                    .collect();
                let ids = if ids.is_empty() {
                    vec![backbone.tokenizer.specials().unk]
                } else {
                    ids
                };
                added.push(backbone.encoder.mean_embedding(&ids)?);
            }
        }
        let prompt_offset = 0;
        let marker_id = match spec.marker {
            Marker::None => None,
            Marker::Mask => Some(backbone.tokenizer.specials().mask.ok_or_else(|| {
                anyhow::anyhow!("MANER needs a mask token and this tokenizer has none")
            })?),
            Marker::Fresh => {
                let e = backbone.encoder.config().embedding_width();
                let mut rng = SplitMix64::new(0xF2E5);
                let std = backbone.encoder.config().initializer_range;
                added.push((0..e).map(|_| (rng.normal() * std) as f32).collect());
                Some((backbone.encoder.config().vocab_size + added.len() - 1) as u32)
            }
        };
        let params = backbone.params.clone();
        backbone.encoder.add_tokens(&params, added)?;

        let head = params.root().pp("ner").with_policy(Policy::LoadOrInit);
        let h = backbone.encoder.hidden_size();
        let std = backbone.encoder.config().initializer_range;
        let lstm = if spec.head.has_lstm() {
            Some(BiLstm::load(&head.pp("lstm"), h, spec.lstm_hidden)?)
        } else {
            None
        };
        let feat = if lstm.is_some() {
            2 * spec.lstm_hidden
        } else {
            h
        };
        let (mlm, proj) = if spec.prompt {
            let mlm = MlmHead::load_with(&params, &backbone.encoder, false)?;
            if !mlm.pretrained
                && !spec.fresh_mlm_head
                && matches!(backbone.kind, BackboneKind::Pretrained { .. })
            {
                bail!(
                    "prompt label words are predicted through the MLM head, and this model has \
                     no pretrained one (an ELECTRA discriminator or an embedding model such as \
                     e5 ships without it): use a model with an MLM head (a BERT, RoBERTa or \
                     XLM-R checkpoint, an ELECTRA generator), or set model.fresh_mlm_head = true \
                     (--fresh-mlm-head) to train a freshly initialized head"
                );
            }
            (Some(mlm), None)
        } else {
            (
                None,
                Some(linear(&head.pp("proj"), feat, classes.len(), std)?),
            )
        };
        let crf = if spec.head.has_crf() {
            Some(Crf::load(&head.pp("crf"), &classes, spec.constrained)?)
        } else {
            None
        };
        Ok(Self {
            spec,
            confidence: Confidence::Marginal,
            aggregation: Aggregation::First,
            labels,
            classes,
            align,
            backbone,
            mlm,
            lstm,
            proj,
            crf,
            marker_id,
            prompt_offset,
            windowed: Arc::default(),
        })
    }

    /// Chooses how a word's tag is read from its sub-words ([`Aggregation`]); other than `first`,
    /// only for a softmax head without MANER's markers or prompt label words.
    pub fn set_aggregation(&mut self, how: Aggregation) -> anyhow::Result<()> {
        if how != Aggregation::First
            && (self.crf.is_some() || self.mlm.is_some() || self.marker_id.is_some())
        {
            bail!(
                "aggregating over sub-words ({how:?}) needs a softmax head without MANER markers \
                 or prompt label words: a CRF decodes one path over the words' units"
            );
        }
        self.aggregation = how;
        Ok(())
    }

    pub fn encoder(&self) -> &Encoder {
        &self.backbone.encoder
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.backbone.tokenizer
    }

    pub fn params(&self) -> &Params {
        &self.backbone.params
    }

    pub fn device(&self) -> Device {
        self.backbone.params.device().clone()
    }

    pub fn dtype(&self) -> DType {
        self.backbone.params.dtype()
    }

    /// The class of a unit's gold tag.
    fn class_of(&self, tag: &str) -> anyhow::Result<u32> {
        let key = if self.spec.prompt {
            tag_type(tag).unwrap_or("O")
        } else {
            tag
        };
        self.classes
            .iter()
            .position(|c| c == key)
            .map(|i| i as u32)
            .with_context(|| {
                format!(
                    "tag {tag:?} is not in the model's label set ({})",
                    self.labels.join(" ")
                )
            })
    }

    /// Aligns a sentence (in the model's default alignment) and cuts it into examples; `tags`
    /// give training targets.
    pub fn encode(
        &self,
        sentence: usize,
        tokens: &[String],
        tags: Option<&[String]>,
    ) -> anyhow::Result<(Alignment, Vec<Example>)> {
        self.encode_as(sentence, tokens, tags, self.align)
    }

    /// [`encode`](Self::encode) with a given alignment (a polyglot run mixes KLUE's characters
    /// with word-level corpora).
    pub fn encode_as(
        &self,
        sentence: usize,
        tokens: &[String],
        tags: Option<&[String]>,
        mode: AlignMode,
    ) -> anyhow::Result<(Alignment, Vec<Example>)> {
        let mut a = align(
            self.tokenizer(),
            tokens,
            tags,
            mode,
            self.spec.marker,
            self.marker_id,
        )?;
        // A constrained CRF gives invalid gold paths no probability: repair them (KLUE's scheme
        // can leave `O I-X` at subword level when an entity starts inside a piece).
        if self.crf.is_some()
            && self.spec.constrained
            && let Some(unit_tags) = a.unit_tags.iter().cloned().collect::<Option<Vec<String>>>()
        {
            let (fixed, _) = crate::data::scheme::repair(&unit_tags, crate::data::Scheme::Iob2);
            a.unit_tags = fixed.into_iter().map(Some).collect();
        }
        let targets = a
            .unit_tags
            .iter()
            .map(|t| t.as_deref().map(|t| self.class_of(t)).transpose())
            .collect::<anyhow::Result<Vec<_>>>()?;
        let ex = examples(
            sentence,
            &a,
            &targets,
            self.tokenizer().specials(),
            self.max_tokens(),
        );
        Ok((a, ex))
    }

    /// A padded batch; at training, MANER's baseline 2 masks words with `rng`.
    pub fn batch(
        &self,
        examples: &[&Example],
        rng: Option<&mut SplitMix64>,
    ) -> anyhow::Result<Batch> {
        let mask_words = match (
            rng,
            self.spec.word_mask_prob > 0.0,
            self.tokenizer().specials().mask,
        ) {
            (Some(rng), true, Some(mask)) => Some((self.spec.word_mask_prob, mask, rng)),
            _ => None,
        };
        Ok(Batch::new(
            examples,
            self.tokenizer().specials().pad,
            &self.device(),
            self.dtype(),
            mask_words,
        )?)
    }

    /// Unit representations: (batch, units, features).
    fn unit_states(&self, batch: &Batch, train: bool) -> candle_core::Result<Tensor> {
        let hidden = self.encoder().forward_t(&batch.ids, &batch.mask, train)?;
        let (b, s, h) = hidden.dims3()?;
        let units = hidden
            .reshape((b * s, h))?
            .index_select(&batch.unit_index, 0)?
            .reshape((b, batch.max_units, h))?;
        match &self.lstm {
            Some(lstm) => lstm.forward(&units, &batch.lengths),
            None => Ok(units),
        }
    }

    /// Class scores of units: (batch, units, classes).
    fn emissions(&self, states: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let x = dropout(
            states,
            self.spec.head_dropout,
            train,
            self.encoder().dropout_rng(),
        )?;
        match (&self.mlm, &self.proj) {
            (Some(mlm), _) => mlm.added_logits(&x, self.encoder())?.narrow(
                D::Minus1,
                self.prompt_offset,
                self.classes.len(),
            ),
            (None, Some(proj)) => proj.forward(&x),
            (None, None) => candle_core::bail!("model has no head"),
        }
    }

    fn head_loss(&self, em: &Tensor, batch: &Batch) -> candle_core::Result<Tensor> {
        match &self.crf {
            Some(crf) => crf.nll(em, &batch.targets, &batch.lengths),
            None => {
                let (b, u, _) = em.dims3()?;
                let flat: Vec<u32> = batch
                    .targets
                    .iter()
                    .flat_map(|t| t.iter().copied().chain(std::iter::repeat_n(0, u - t.len())))
                    .collect();
                let targets = Tensor::from_vec(flat, (b, u, 1), em.device())?;
                let picked = log_softmax(em)?
                    .gather(&targets, D::Minus1)?
                    .squeeze(D::Minus1)?;
                let count = batch
                    .unit_weight
                    .sum_all()?
                    .to_dtype(DType::F64)?
                    .to_scalar::<f64>()?
                    .max(1.0);
                picked.mul(&batch.unit_weight)?.sum_all()? / -count
            }
        }
    }

    /// Prepares the model for inference only (tagging, evaluation): weights are copied into the
    /// layout the matrix products run fastest with (see `Linear::freeze`). A frozen model
    /// refuses to train.
    pub fn freeze(&mut self) -> anyhow::Result<()> {
        self.backbone.encoder.freeze()?;
        if let Some(p) = self.proj.as_mut() {
            p.freeze()?;
        }
        Ok(())
    }

    /// Opt-in int8 inference for a frozen model: the encoder's layer products run on int8 weights
    /// (see [`crate::model::encoder::Encoder::quantize_int8`]); heads stay f32.
    pub fn quantize_int8(&mut self) -> anyhow::Result<()> {
        self.backbone.encoder.quantize_int8()
    }

    /// Gradients of `loss` for every parameter: candle's autograd for the heads, then the
    /// encoder's own backward pass for its taped training passes (see `encoder/backward.rs`). Always use this
    /// rather than `loss.backward()`, which stops at the encoder's output. The encoder takes part
    /// through its training passes (`train = true`); evaluation passes keep nothing for a
    /// backward pass.
    pub fn backward(&self, loss: &Tensor) -> candle_core::Result<candle_core::backprop::GradStore> {
        let mut store = loss.backward()?;
        self.encoder().finish_backward(&mut store)?;
        Ok(store)
    }

    /// The training loss of a batch (mean over units, or over sentences for the CRF), averaged over
    /// the multi-sample-dropout masks.
    pub fn loss(&self, batch: &Batch, train: bool) -> candle_core::Result<Tensor> {
        Ok(self.loss_and_emissions(batch, train)?.0)
    }

    /// The alignment for a corpus of `format`: words, or for character-level corpora (KLUE)
    /// the character units the model was trained with.
    pub fn align_for(&self, format: crate::data::Format) -> AlignMode {
        AlignMode::for_format(format, self.spec.char_units)
    }

    /// The longest window, special tokens included: the encoder's limit, or `max_length`.
    pub fn max_tokens(&self) -> usize {
        let limit = self.encoder().config().max_tokens();
        match self.spec.max_length {
            0 => limit,
            n => n.clamp(3, limit),
        }
    }

    /// The loss and the class scores R-Drop compares: of the first dropout sample, or averaged
    /// over the samples when multi-sample dropout averages logits.
    pub fn loss_and_emissions(
        &self,
        batch: &Batch,
        train: bool,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let states = self.unit_states(batch, train)?;
        let k = if train {
            self.spec.msd_samples.max(1)
        } else {
            1
        };
        if k > 1 && self.spec.msd_average == MsdAverage::Logits {
            // One loss on the class scores averaged over the masks; R-Drop compares those.
            let mut sum = self.emissions(&states, train)?;
            for _ in 1..k {
                sum = (sum + self.emissions(&states, train)?)?;
            }
            let em = (sum / k as f64)?;
            return Ok((self.head_loss(&em, batch)?, em));
        }
        let mut total: Option<Tensor> = None;
        let mut first: Option<Tensor> = None;
        for _ in 0..k {
            let em = self.emissions(&states, train)?;
            let l = self.head_loss(&em, batch)?;
            total = Some(match total {
                Some(t) => (t + l)?,
                None => l,
            });
            first.get_or_insert(em);
        }
        match (total, first) {
            (Some(t), Some(em)) => Ok(((t / k as f64)?, em)),
            _ => candle_core::bail!("no loss"),
        }
    }

    /// The word-embedding parameter (FGM perturbs it).
    pub fn word_embedding_var(&self) -> Option<candle_core::Var> {
        self.params()
            .vars()
            .into_iter()
            .find(|(n, _)| n == super::params::WORD_EMBEDDING)
            .map(|(_, v)| v)
    }

    /// Predicted class and its probability for each unit of each example.
    pub fn predict_batch(&self, batch: &Batch) -> candle_core::Result<Vec<Vec<(u32, f32)>>> {
        Ok(self.predict_units(batch, false)?.0)
    }

    /// [`predict_batch`](Self::predict_batch) with each unit's class scores (the emissions, before
    /// any CRF; padded units included up to the batch's widest): what a benchmark compares with
    /// another implementation's logits.
    #[allow(clippy::type_complexity)]
    pub fn predict_batch_scores(
        &self,
        batch: &Batch,
    ) -> candle_core::Result<(Vec<Vec<(u32, f32)>>, Vec<Vec<Vec<f32>>>)> {
        let (preds, scores) = self.predict_units(batch, true)?;
        Ok((preds, scores.unwrap_or_default()))
    }

    /// [`predict_batch`](Self::predict_batch), with each unit's class scores (the emissions,
    /// before any CRF) when `logits` asks for them.
    #[allow(clippy::type_complexity)]
    fn predict_units(
        &self,
        batch: &Batch,
        logits: bool,
    ) -> candle_core::Result<(Vec<Vec<(u32, f32)>>, Option<Vec<Vec<Vec<f32>>>>)> {
        let em = self.emissions(&self.unit_states(batch, false)?, false)?;
        let scores = if logits {
            Some(em.to_dtype(DType::F32)?.to_vec3::<f32>()?)
        } else {
            None
        };
        Ok((self.decode_emissions(&em, batch)?, scores))
    }

    fn decode_emissions(
        &self,
        em: &Tensor,
        batch: &Batch,
    ) -> candle_core::Result<Vec<Vec<(u32, f32)>>> {
        match &self.crf {
            Some(crf) => {
                let decoded = crf.decode(em, &batch.lengths)?;
                // The emission softmax of the decoded label, where asked for instead of the
                // CRF's marginal.
                let soft: Option<Vec<Vec<Vec<f32>>>> = match self.confidence {
                    Confidence::Marginal => None,
                    Confidence::Softmax => Some(softmax(&em.to_dtype(DType::F32)?)?.to_vec3()?),
                };
                Ok(decoded
                    .into_iter()
                    .enumerate()
                    .map(|(b, (path, conf))| {
                        path.into_iter()
                            .zip(conf)
                            .enumerate()
                            .map(|(i, (y, c))| match &soft {
                                Some(p) => (y, p[b][i][y as usize]),
                                None => (y, c as f32),
                            })
                            .collect()
                    })
                    .collect())
            }
            None => {
                let probs = softmax(&em.to_dtype(DType::F32)?)?;
                let best: Vec<Vec<u32>> = probs.argmax(D::Minus1)?.to_vec2()?;
                let conf: Vec<Vec<f32>> = probs.max(D::Minus1)?.to_vec2()?;
                Ok(best
                    .into_iter()
                    .zip(conf)
                    .zip(&batch.lengths)
                    .map(|((b, c), &n)| b.into_iter().zip(c).take(n).collect())
                    .collect())
            }
        }
    }

    /// How many sentences were longer than the model's positions, and so tagged in overlapping
    /// windows (each token read from the window where it is most central), since last asked.
    pub fn take_windowed(&self) -> usize {
        self.windowed.swap(0, Ordering::Relaxed)
    }

    /// What [`take_windowed`](Self::take_windowed) counted, in words (`None` when nothing was
    /// windowed): the one wording the command line and the trainer say it in.
    pub fn windowed_note(&self) -> Option<String> {
        let n = self.take_windowed();
        (n > 0).then(|| {
            format!(
                "{n} sentence{} longer than the model's {} positions; each was read in \
                 overlapping windows, every token from the window where it is most central",
                if n == 1 { " was" } else { "s were" },
                self.max_tokens()
            )
        })
    }

    /// Bytes of the weights (what a saved model takes on disk, besides its tokenizer).
    pub fn weight_bytes(&self) -> u64 {
        self.params().count() as u64 * self.dtype().size_in_bytes() as u64
    }

    /// Tags sentences (token lists), batching by length; returns one tag and confidence per token.
    pub fn tag(&self, sentences: &[Vec<String>], batch_size: usize) -> anyhow::Result<Vec<Tagged>> {
        self.tag_as(sentences, batch_size, self.align)
    }

    /// [`tag`](Self::tag) with a given alignment.
    pub fn tag_as(
        &self,
        sentences: &[Vec<String>],
        batch_size: usize,
        mode: AlignMode,
    ) -> anyhow::Result<Vec<Tagged>> {
        Ok(self.tag_with(sentences, batch_size, mode, false)?.0)
    }

    /// [`tag_as`](Self::tag_as), with the class scores (emissions, in [`classes`](Self::classes)
    /// order) of each token that carries a unit's label (a word's first sub-word; `None` for the
    /// rest): what a parity check against another implementation compares.
    pub fn tag_with_logits(
        &self,
        sentences: &[Vec<String>],
        batch_size: usize,
        mode: AlignMode,
    ) -> anyhow::Result<(Vec<Tagged>, TokenLogits)> {
        let (tagged, logits) = self.tag_with(sentences, batch_size, mode, true)?;
        Ok((tagged, logits.unwrap_or_default()))
    }

    /// How many of `batches` independent batches this model tags at once with the current
    /// pool's threads: [`lanes_for`](crate::model::device::lanes_for) on the CPU, one on a GPU.
    pub fn lanes(&self, batches: usize) -> usize {
        if self.device().is_cpu() {
            crate::model::device::lanes_for(rayon::current_num_threads(), batches)
        } else {
            1
        }
    }

    /// The unit predictions (and with `logits` the class scores) of each batch of `chunks`
    /// (indices into `examples`), in lanes on the CPU (see `in_lanes`; a GPU runs one batch at
    /// a time); each batch's numbers are those of a serial run.
    #[allow(clippy::type_complexity)]
    fn predict_in_lanes(
        &self,
        examples: &[Example],
        chunks: &[&[usize]],
        logits: bool,
    ) -> anyhow::Result<Vec<(Vec<Vec<(u32, f32)>>, Option<Vec<Vec<Vec<f32>>>>)>> {
        let threads = rayon::current_num_threads();
        crate::model::device::in_lanes(chunks, self.lanes(chunks.len()), threads, |chunk| {
            let ex: Vec<&Example> = chunk.iter().map(|&i| &examples[i]).collect();
            Ok(self.predict_units(&self.batch(&ex, None)?, logits)?)
        })
    }

    fn tag_with(
        &self,
        sentences: &[Vec<String>],
        batch_size: usize,
        mode: AlignMode,
        keep_logits: bool,
    ) -> anyhow::Result<(Vec<Tagged>, Option<TokenLogits>)> {
        // Aggregating over sub-words scores every sub-word: each one is a unit of its own.
        let pieces = self.aggregation != Aggregation::First
            && mode == AlignMode::Words
            && self.crf.is_none()
            && self.mlm.is_none()
            && self.marker_id.is_none();
        let keep_logits = keep_logits || pieces;
        let mut aligned = Vec::with_capacity(sentences.len());
        let mut all = Vec::new();
        for (i, tokens) in sentences.iter().enumerate() {
            let (a, ex) = self.encode_as(i, tokens, None, mode)?;
            let ex = if pieces {
                self.piece_examples(i, &a)
            } else {
                ex
            };
            aligned.push(a);
            all.extend(ex);
        }
        let mut order: Vec<usize> = (0..all.len()).collect();
        order.sort_by_key(|&i| all[i].ids.len());
        // (sentence, window) -> per-unit predictions of that window
        let mut by_window: BTreeMap<(usize, usize), Vec<(usize, UnitPrediction)>> = BTreeMap::new();
        let mut scores_by_window: BTreeMap<(usize, usize), UnitScores> = BTreeMap::new();
        // The longest batches first, so that no long one is left alone at the end of the lanes;
        // the predictions are keyed by window, not by order.
        let mut chunks: Vec<&[usize]> = order.chunks(batch_size.max(1)).collect();
        chunks.reverse();
        let outputs = self.predict_in_lanes(&all, &chunks, keep_logits)?;
        for (chunk, (preds, scores)) in chunks.iter().zip(outputs) {
            let ex: Vec<&Example> = chunk.iter().map(|&i| &all[i]).collect();
            for (e, p) in ex.iter().zip(preds) {
                by_window.insert(
                    (e.sentence, e.window),
                    e.unit_ids.iter().copied().zip(p).collect(),
                );
            }
            for (e, s) in ex.iter().zip(scores.into_iter().flatten()) {
                scores_by_window.insert(
                    (e.sentence, e.window),
                    e.unit_ids.iter().copied().zip(s).collect(),
                );
            }
        }
        let content = self.max_tokens().saturating_sub(2).max(1);
        let mut out = Vec::with_capacity(sentences.len());
        let mut logits: TokenLogits = Vec::new();
        for (i, a) in aligned.iter().enumerate() {
            let wins = windows(a.ids.len(), content);
            if wins.len() > 1 {
                self.windowed.fetch_add(1, Ordering::Relaxed);
            }
            let mut unit_pred = vec![(0u32, 1.0f32); a.units.len()];
            let mut unit_scores: Vec<Option<Vec<f32>>> = vec![None; a.units.len()];
            // Units of the examples: `a`'s units, or every sub-word when aggregating.
            let position = |k: usize| if pieces { k } else { a.units[k] };
            let mut piece_scores: Vec<Option<Vec<f32>>> = vec![None; a.ids.len()];
            for (w, _) in wins.iter().enumerate() {
                for &(k, pred) in by_window.get(&(i, w)).map(Vec::as_slice).unwrap_or(&[]) {
                    if !pieces && best_window(&wins, a.units[k]) == w {
                        unit_pred[k] = pred;
                    }
                }
                for (k, row) in scores_by_window.remove(&(i, w)).unwrap_or_default() {
                    if best_window(&wins, position(k)) == w {
                        match pieces {
                            true => piece_scores[k] = Some(row),
                            false => unit_scores[k] = Some(row),
                        }
                    }
                }
            }
            if pieces {
                for (u, &start) in a.units.iter().enumerate() {
                    let end = a.units.get(u + 1).copied().unwrap_or(a.ids.len());
                    unit_pred[u] = self.aggregate_word(&piece_scores[start..end]);
                    unit_scores[u] = piece_scores[start].clone();
                }
            }
            if keep_logits {
                logits.push(
                    a.sources
                        .iter()
                        .map(|s| match *s {
                            super::align::Source::First(u) => unit_scores[u].clone(),
                            _ => None,
                        })
                        .collect(),
                );
            }
            let unit_tags = self.unit_tags(&unit_pred);
            let tags = expand(&a.sources, &unit_tags);
            let confidence = a
                .sources
                .iter()
                .map(|s| match *s {
                    super::align::Source::First(u) | super::align::Source::Inside(u) => {
                        unit_pred[u].1
                    }
                    _ => 1.0,
                })
                .collect();
            out.push(Tagged { tags, confidence });
        }
        Ok((out, keep_logits.then_some(logits)))
    }

    /// A sentence's examples with every sub-word a unit (for aggregating over a word's sub-words).
    fn piece_examples(&self, sentence: usize, a: &Alignment) -> Vec<Example> {
        let every = Alignment {
            ids: a.ids.clone(),
            units: (0..a.ids.len()).collect(),
            unit_tags: vec![None; a.ids.len()],
            sources: Vec::new(),
        };
        examples(
            sentence,
            &every,
            &vec![None; a.ids.len()],
            self.tokenizer().specials(),
            self.max_tokens(),
        )
    }

    /// A word's class and confidence from its sub-words' scores, as [`Self::aggregation`] says.
    fn aggregate_word(&self, pieces: &[Option<Vec<f32>>]) -> UnitPrediction {
        let rows: Vec<&[f32]> = pieces.iter().flatten().map(Vec::as_slice).collect();
        aggregate(&rows, self.aggregation)
    }

    /// Every layer's attention over a sentence's subwords (its first window), with each subword's
    /// text and the tag predicted at it (empty for subwords that are not units).
    pub fn attention(&self, tokens: &[String]) -> anyhow::Result<AttentionView> {
        let (_, examples) = self.encode(0, tokens, None)?;
        let Some(ex) = examples.first() else {
            bail!("nothing to encode");
        };
        let batch = self.batch(&[ex], None)?;
        let out = self
            .encoder()
            .forward_full(&batch.ids, &batch.mask, false, true)?;
        let weights = out
            .attentions
            .iter()
            .map(|a| a.squeeze(0)?.to_dtype(DType::F32)?.to_vec3::<f32>())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let preds = self.predict_batch(&batch)?.pop().unwrap_or_default();
        let unit_tags = self.unit_tags(&preds);
        let mut token_tags = vec![String::new(); ex.ids.len()];
        for (&pos, tag) in ex.units.iter().zip(unit_tags) {
            token_tags[pos] = tag;
        }
        Ok(AttentionView {
            tokens: ex
                .ids
                .iter()
                .map(|&id| self.tokenizer().token_text(id))
                .collect(),
            token_tags,
            weights,
        })
    }

    /// Unit classes to BIO tags (prompt classes are types: runs become `B-X I-X ...`).
    fn unit_tags(&self, preds: &[(u32, f32)]) -> Vec<String> {
        let names: Vec<&str> = preds
            .iter()
            .map(|&(c, _)| self.classes.get(c as usize).map_or("O", String::as_str))
            .collect();
        if !self.spec.prompt {
            return names.iter().map(|s| s.to_string()).collect();
        }
        let mut prev = "O";
        names
            .iter()
            .map(|&ty| {
                let tag = if ty == "O" {
                    "O".to_string()
                } else if ty == prev {
                    format!("I-{ty}")
                } else {
                    format!("B-{ty}")
                };
                prev = ty;
                tag
            })
            .collect()
    }

    /// Renames the model's outputs to a corpus's tags (`target`; `None`: only BIOES prefixes and
    /// explicit entries of `map` change), as [`LabelMap::resolve`] matches them. Decoding is
    /// untouched (a CRF keeps the constraints it was trained with): only the names of what it
    /// predicts change, so a model trained on `PER`/`LOC`/`ORG` scores on KLUE's `PS`/`LC`/`OG`.
    ///
    /// [`LabelMap::resolve`]: crate::data::label_map::LabelMap::resolve
    pub fn relabel(
        &mut self,
        map: &crate::data::label_map::LabelMap,
        target: Option<&[String]>,
    ) -> anyhow::Result<crate::data::label_map::Mapped> {
        let mapped = map.resolve(&self.labels, target)?;
        if self.spec.prompt {
            let types = map.resolve(
                &self
                    .classes
                    .iter()
                    .map(|c| {
                        if c == "O" {
                            c.clone()
                        } else {
                            format!("B-{c}")
                        }
                    })
                    .collect::<Vec<_>>(),
                target,
            )?;
            self.classes = types
                .tags
                .iter()
                .map(|t| tag_type(t).unwrap_or("O").to_string())
                .collect();
        } else {
            self.classes = mapped.tags.clone();
        }
        self.labels = mapped.tags.clone();
        Ok(mapped)
    }

    /// The CRF's scores in pytorch-crf's layout, constraints folded in (see [`Crf::torch_scores`]).
    #[allow(clippy::type_complexity)]
    pub fn crf_scores(&self) -> anyhow::Result<Option<(Tensor, Tensor, Tensor)>> {
        Ok(self.crf.as_ref().map(Crf::torch_scores).transpose()?)
    }

    /// Gives the emission layer the rows of another classifier (a token-classification
    /// checkpoint's, `weight` (outputs, features) and `bias`) for the classes both name, when the
    /// widths agree. Returns the classes that were kept; the others keep their initialization.
    pub fn keep_classifier_rows(
        &self,
        weight: &Tensor,
        bias: &Tensor,
        their_labels: &[String],
    ) -> anyhow::Result<Vec<String>> {
        let Some(proj) = &self.proj else {
            return Ok(Vec::new());
        };
        if weight.dims().get(1) != proj.weight.dims().get(1) {
            return Ok(Vec::new());
        }
        for (name, var) in self.params().vars() {
            match name.as_str() {
                "ner.proj.weight" => copy_rows(&var, weight, their_labels, &self.classes, false)?,
                "ner.proj.bias" => copy_rows(&var, bias, their_labels, &self.classes, false)?,
                _ => {}
            }
        }
        Ok(self
            .classes
            .iter()
            .filter(|c| their_labels.contains(c))
            .cloned()
            .collect())
    }

    /// A model over `labels` that starts from the model saved in `dir` (another run's best): its
    /// encoder always, its head as `head` says. With [`InitHead::Keep`], or when `labels` has no
    /// entity type (a zero-shot run trains nothing), the saved label set is kept.
    #[allow(clippy::too_many_arguments)]
    pub fn init_from(
        dir: &Path,
        spec: ModelSpec,
        labels: Vec<String>,
        align: AlignMode,
        head: InitHead,
        dtype: DType,
        device: &Device,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let saved = read_saved(dir)?;
        let keep = head == InitHead::Keep || labels.len() <= 1;
        let labels = if keep {
            if let Some(extra) = labels.iter().find(|l| !saved.labels.contains(l)) {
                bail!(
                    "{}: the model has no label {extra} (its labels: {}); use init_head = \"remap\" to add it",
                    dir.display(),
                    saved.labels.join(" ")
                );
            }
            saved.labels.clone()
        } else {
            labels
        };
        let mut checkpoint = Checkpoint::from_dir(dir)?;
        // The class-indexed tensors are rebuilt for the new classes, then get the saved rows of
        // the classes both have; a fresh head takes nothing of the saved head.
        let mut old = HashMap::new();
        for name in CLASS_TENSORS.iter().chain(&ADDED_ROW_TENSORS) {
            if let Some(t) = checkpoint.tensors.remove(*name) {
                old.insert(name.to_string(), t);
            }
        }
        if head == InitHead::Fresh {
            checkpoint.tensors.retain(|k, _| !k.starts_with("ner."));
            old.clear();
        }
        let backbone = Backbone::saved(dir, &saved.backbone, checkpoint, dtype, device, seed)?;
        let model = Self::new(backbone, spec, labels, align)?;
        let old_classes = classes_of(&saved.spec, &saved.labels);
        let keyed = |c: &[String]| c.iter().map(|c| format!("class:{c}")).collect::<Vec<_>>();
        let (old_keys, new_keys) = (keyed(&old_classes), keyed(&model.classes));
        let old_added = added_row_keys(&saved.spec, &old_classes);
        let new_added = added_row_keys(&model.spec, &model.classes);
        for (name, var) in model.params().vars() {
            let Some(source) = old.get(&name) else {
                continue;
            };
            let (from, to) = if ADDED_ROW_TENSORS.contains(&name.as_str()) {
                (&old_added, &new_added)
            } else {
                (&old_keys, &new_keys)
            };
            copy_rows(&var, source, from, to, name == "ner.crf.transitions")
                .with_context(|| format!("{}: {name}", dir.display()))?;
        }
        Ok(model)
    }

    /// Writes the model to `dir`: `model.safetensors`, [`MODEL_FILE`], `config.json` and the
    /// tokenizer (or character vocabulary). Only the weights are written under a temporary name and
    /// renamed; the other files are written in place, so a reader of `dir` during a save can see
    /// new weights beside old metadata. A run's `best/` is therefore written whole elsewhere and
    /// switched in one step (`RunDir::publish_best`).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let weights = dir.join("model.safetensors");
        let tmp = dir.join("model.safetensors.tmp");
        candle_core::safetensors::save(&self.params().tensors(), &tmp)?;
        std::fs::rename(&tmp, &weights)?;
        self.backbone.save_files(dir)?;
        let saved = SavedModel {
            format: 1,
            spec: self.spec.clone(),
            labels: self.labels.clone(),
            align: self.align,
            backbone: self.backbone.kind.clone(),
        };
        std::fs::write(dir.join(MODEL_FILE), serde_json::to_string_pretty(&saved)?)?;
        Ok(())
    }

    /// Loads a model saved by [`save`](Self::save); every tensor must be present.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> anyhow::Result<Self> {
        let saved = read_saved(dir)?;
        let checkpoint = Checkpoint::from_dir(dir)?;
        let backbone = Backbone::saved(dir, &saved.backbone, checkpoint, dtype, device, 0)?;
        // Heads and added rows must load too: nothing may be silently re-initialized.
        let backbone = Backbone {
            params: backbone.params.with_policy(Policy::MustLoad),
            ..backbone
        };
        let model = Self::new(backbone, saved.spec, saved.labels, saved.align)?;
        model.params().require_loaded(dir)?;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entity types of every shipped corpus (`nerlab stats` on each in ../shared/data).
    const CORPUS_TYPES: &[(&str, &[&str])] = &[
        ("KLUE-NER", &["PS", "LC", "OG", "DT", "TI", "QT"]),
        ("WikiANN", &["PER", "LOC", "ORG"]),
        ("MasakhaNER", &["PER", "LOC", "ORG", "DATE"]),
        (
            "KMOU",
            &[
                "PER", "LOC", "ORG", "DAT", "TIM", "DUR", "MNY", "PNT", "NOH", "POH",
            ],
        ),
        ("MultiCoNER I", &["PER", "LOC", "GRP", "CORP", "CW", "PROD"]),
        (
            "MultiCoNER II",
            &[
                "Facility",
                "OtherLOC",
                "HumanSettlement",
                "Station",
                "VisualWork",
                "MusicalWork",
                "WrittenWork",
                "ArtWork",
                "Software",
                "OtherCW",
                "MusicalGRP",
                "PublicCorp",
                "PrivateCorp",
                "OtherCORP",
                "AerospaceManufacturer",
                "SportsGRP",
                "CarManufacturer",
                "TechCORP",
                "ORG",
                "Scientist",
                "Artist",
                "Athlete",
                "Politician",
                "Cleric",
                "SportsManager",
                "OtherPER",
                "Clothing",
                "Vehicle",
                "Food",
                "Drink",
                "OtherPROD",
                "Medication/Vaccine",
                "MedicalProcedure",
                "AnatomicalStructure",
                "Symptom",
                "Disease",
            ],
        ),
    ];

    #[test]
    fn every_shipped_type_has_a_label_word_distinct_within_its_corpus() {
        for (corpus, types) in CORPUS_TYPES {
            let mut words = std::collections::BTreeMap::new();
            for ty in *types {
                let word = known_label_word(ty)
                    .unwrap_or_else(|| panic!("{corpus}: no label word for {ty}"));
                if let Some(other) = words.insert(word, ty) {
                    panic!("{corpus}: {ty} and {other} share the label word {word:?}");
                }
            }
        }
        // One notion, one word, whatever the corpus calls it.
        assert_eq!(known_label_word("PS"), known_label_word("PER"));
        assert_eq!(known_label_word("DT"), known_label_word("DATE"));
        assert_eq!(default_label_word("Some_New-Type"), "some new type");
    }
}
