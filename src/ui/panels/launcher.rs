//! The run launcher: corpus, model, head, method, tricks and hyperparameters of a new run, checked
//! by `RunConfig::validate` before it can start (each reason shown next to its field); presets for
//! a first launch; start, pause, resume and stop of the runs in the session.

use std::ops::RangeInclusive;

use egui::{RichText, Ui};
use serde::{Deserialize, Serialize};

use super::super::context::{Action, PanelCtx, PathTarget};
use super::super::store::Phase;
use super::super::theme;
use super::super::widgets::{error_text_ui, labeled};
use crate::model::align::{CharUnits, Marker};
use crate::model::device::DeviceSpec;
use crate::model::ner::{HeadKind, InitHead, MsdAverage};
use crate::protocol::Command;
use crate::train::RunConfig;
use crate::train::config::{FieldError, RdropKl, Schedule, Shots};
use crate::train::run_dir::RunState;
use crate::train::sources::{MODEL_PRESETS, RUN_PRESETS, apply_preset};

/// The launcher's persisted form.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LauncherState {
    pub config: RunConfig,
    /// Training corpora, one per line (several: a polyglot mix).
    pub train_text: String,
    pub dev_text: String,
    pub eval_text: String,
    pub finetune_text: String,
    pub use_finetune: bool,
    pub method: Method,
    /// Prompt label words, `PER=person, LOC=location`.
    pub label_words_text: String,
    /// "Make it an experiment": the key varied, its values (comma-separated) and the name.
    pub axis_key: String,
    pub axis_values: String,
    pub experiment_name: String,
    /// "Open a trained model": a run, model folder or token-classification checkpoint, the
    /// corpus it is evaluated on, and label mappings (`PER=PS, MISC=O`).
    pub inspect_model: String,
    pub inspect_data: String,
    pub inspect_map: String,
    /// For a PyTorch state dict: its encoder (folder or hf:) and labels (klue, a file, A,B,C);
    /// empty takes what lies beside the file.
    pub inspect_encoder: String,
    pub inspect_labels: String,
}

/// The research method, as the launcher offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Method {
    #[default]
    Plain,
    Maner,
    ManerFresh,
    ManerBaseline2,
    Prompt,
}

impl Method {
    /// The method a model configuration describes (a preset's).
    fn of(m: &crate::train::config::ModelConfig) -> Self {
        match (m.marker, m.prompt) {
            (_, true) => Self::Prompt,
            (Marker::Mask, _) => Self::Maner,
            (Marker::Fresh, _) => Self::ManerFresh,
            (Marker::None, _) if m.word_mask_prob > 0.0 => Self::ManerBaseline2,
            (Marker::None, _) => Self::Plain,
        }
    }

    const ALL: [(Method, &'static str); 5] = [
        (Method::Plain, "plain"),
        (Method::Maner, "MANER (mask before words)"),
        (Method::ManerFresh, "MANER control (fresh token)"),
        (Method::ManerBaseline2, "MANER baseline 2 (word masking)"),
        (Method::Prompt, "prompt label words"),
    ];
}

impl Default for LauncherState {
    fn default() -> Self {
        let mut config = RunConfig::default();
        let _ = apply_preset("demo", &mut config);
        let mut s = Self {
            config,
            train_text: String::new(),
            dev_text: String::new(),
            eval_text: String::new(),
            finetune_text: String::new(),
            use_finetune: false,
            method: Method::Plain,
            label_words_text: String::new(),
            axis_key: "seed".into(),
            axis_values: "1, 2, 3".into(),
            experiment_name: String::new(),
            inspect_model: String::new(),
            inspect_data: "klue-ner/dev".into(),
            inspect_map: String::new(),
            inspect_encoder: String::new(),
            inspect_labels: String::new(),
        };
        s.sync_text_from_config();
        s
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

impl LauncherState {
    pub fn sync_text_from_config(&mut self) {
        self.train_text = self.config.data.train.join("\n");
        self.dev_text = self.config.data.dev.clone().unwrap_or_default();
        self.eval_text = self.config.data.eval.join("\n");
        self.label_words_text = self
            .config
            .model
            .label_words
            .iter()
            .map(|(t, w)| format!("{t}={w}"))
            .collect::<Vec<_>>()
            .join(", ");
    }

    /// The configuration the form describes.
    pub fn config(&self) -> RunConfig {
        let mut c = self.config.clone();
        c.data.train = lines(&self.train_text);
        c.data.dev = Some(self.dev_text.trim().to_string()).filter(|d| !d.is_empty());
        c.data.eval = lines(&self.eval_text);
        c.finetune = self.use_finetune.then(|| {
            let mut f = c.finetune.clone().unwrap_or_default();
            f.train = lines(&self.finetune_text);
            f
        });
        let m = &mut c.model;
        (m.marker, m.word_mask_prob, m.prompt) = match self.method {
            Method::Plain => (Marker::None, 0.0, false),
            Method::Maner => (Marker::Mask, 0.0, false),
            Method::ManerFresh => (Marker::Fresh, 0.0, false),
            // The probability the user set; the paper's default until one is set.
            Method::ManerBaseline2 => (
                Marker::None,
                if m.word_mask_prob > 0.0 {
                    m.word_mask_prob
                } else {
                    crate::model::ner::MANER_WORD_MASK_PROB
                },
                false,
            ),
            Method::Prompt => (Marker::None, 0.0, true),
        };
        if self.method == Method::Prompt {
            m.head = HeadKind::Softmax;
            m.label_words = parse_label_words(&self.label_words_text);
        }
        c
    }

    fn preset(&mut self, name: &str) {
        let mut c = RunConfig {
            out: self.config.out.clone(),
            ..RunConfig::default()
        };
        if apply_preset(name, &mut c).is_ok() {
            self.method = Method::of(&c.model);
            self.config = c;
            self.sync_text_from_config();
        }
    }
}

/// The reasons `RunConfig::validate` gave, shown next to the fields they are about.
struct Problems<'a> {
    errors: &'a [FieldError],
    theme: theme::Theme,
}

impl Problems<'_> {
    /// Every reason about a field whose name starts with `prefix`.
    fn ui(&self, ui: &mut Ui, prefix: &str) {
        for e in self.errors.iter().filter(|e| e.field.starts_with(prefix)) {
            ui.colored_label(theme::error_text(self.theme), format!("⚠ {}", e.reason));
        }
    }
}

pub fn ui(s: &mut LauncherState, ui: &mut Ui, cx: &PanelCtx<'_>) -> Vec<Action> {
    let mut actions = Vec::new();
    ui.heading("Launch a run");
    presets_ui(s, ui, &mut actions);
    ui.separator();
    let config = s.config();
    let errors = config.validate();
    let problems = Problems {
        errors: &errors,
        theme: cx.theme,
    };
    egui::ScrollArea::vertical()
        .id_salt("launcher-form")
        .show(ui, |ui| {
            egui::Grid::new("launcher-grid")
                .num_columns(2)
                .spacing([12.0, 6.0])
                .show(ui, |ui| {
                    corpora_rows_ui(s, ui, &problems);
                    model_rows_ui(s, ui, &problems);
                    data_rows_ui(s, ui, &problems);
                    optimization_row_ui(s, ui, &problems);
                    device_row_ui(s, ui);
                });
        });
    ui.separator();
    start_ui(ui, &config, &problems, &mut actions);
    experiment_ui(s, ui, &config, problems.errors.is_empty(), &mut actions);
    inspect_ui(s, ui, cx.theme, &mut actions);
    ui.separator();
    runs_table(ui, cx, &mut actions);
    actions
}

/// The presets and the folder pickers a first launch starts from.
fn presets_ui(s: &mut LauncherState, ui: &mut Ui, actions: &mut Vec<Action>) {
    ui.horizontal_wrapped(|ui| {
        ui.label("Start from:");
        if ui
            .button("Offline demo (character model, built-in Korean corpus)")
            .clicked()
        {
            s.preset("demo");
        }
        if ui
            .button("KLUE-NER + KoELECTRA (Hugging Face Hub)")
            .clicked()
        {
            s.preset("klue-koelectra");
        }
        egui::ComboBox::from_id_salt("run-presets")
            .selected_text("papers' recipes…")
            .show_ui(ui, |ui| {
                for (name, about) in RUN_PRESETS {
                    if ui
                        .selectable_label(false, format!("{name}: {about}"))
                        .clicked()
                    {
                        s.preset(name);
                    }
                }
            })
            .response
            .on_hover_text("every preset of nerlab train --preset (docs/METHODS.md)");
        if ui.button("Open a corpus folder…").clicked() {
            actions.push(Action::PickPath(PathTarget::Train));
        }
        if ui.button("Open a model folder…").clicked() {
            actions.push(Action::PickPath(PathTarget::Model));
        }
    });
}

/// One grid row: a label (with `help` on hover, when there is any) and a wide one-line text field
/// it labels, showing `hint` while empty.
fn text_row(ui: &mut Ui, label: &str, help: &str, text: &mut String, hint: &str, salt: &str) {
    let mut l = ui.label(label);
    if !help.is_empty() {
        l = l.on_hover_text(help);
    }
    ui.add(
        egui::TextEdit::singleline(text)
            .desired_width(420.0)
            .hint_text(hint)
            .id_salt(salt),
    )
    .labelled_by(l.id);
    ui.end_row();
}

/// The grid rows of the training, dev and zero-shot evaluation corpora.
fn corpora_rows_ui(s: &mut LauncherState, ui: &mut Ui, problems: &Problems<'_>) {
    let l = ui.label("Training corpora").on_hover_text("One per line: a path, builtin:demo/train, klue-ner/train, wikiann:ko/train, hf:<repo>:<config>/<split>. Several lines make a polyglot mix.");
    ui.vertical(|ui| {
        ui.add(corpora_edit(&mut s.train_text, 2, "train-text"))
            .labelled_by(l.id);
        problems.ui(ui, "data");
    });
    ui.end_row();
    text_row(ui, "Dev corpus", "", &mut s.dev_text, "", "dev-text");
    let l = ui
        .label("Zero-shot evaluation")
        .on_hover_text("Corpora scored at the end (other languages), one per line");
    ui.add(corpora_edit(&mut s.eval_text, 1, "eval-text"))
        .labelled_by(l.id);
    ui.end_row();
}

/// A box of corpora, one per line (read back by `lines`).
fn corpora_edit<'t>(text: &'t mut String, rows: usize, id: &str) -> egui::TextEdit<'t> {
    egui::TextEdit::multiline(text)
        .desired_rows(rows)
        .desired_width(420.0)
        .id_salt(id)
}

/// The grid rows of the model, its head and the research method.
fn model_rows_ui(s: &mut LauncherState, ui: &mut Ui, problems: &Problems<'_>) {
    let l = ui.label("Model");
    ui.vertical(|ui| {
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut s.config.model.source)
                    .desired_width(300.0)
                    .id_salt("model-source"),
            )
            .labelled_by(l.id);
            egui::ComboBox::from_id_salt("model-preset")
                .selected_text("presets")
                .show_ui(ui, |ui| {
                    ui.selectable_value(
                        &mut s.config.model.source,
                        "char".to_string(),
                        "char: character model from scratch",
                    );
                    for (name, _, about) in MODEL_PRESETS {
                        ui.selectable_value(
                            &mut s.config.model.source,
                            name.to_string(),
                            format!("{name}: {about}"),
                        );
                    }
                })
                .response
                .on_hover_text("model presets");
        });
        problems.ui(ui, "model.source");
    });
    ui.end_row();
    ui.label("Head");
    ui.vertical(|ui| {
        ui.horizontal(|ui| {
            for (h, name) in [
                (HeadKind::Softmax, "softmax"),
                (HeadKind::Bilstm, "BiLSTM"),
                (HeadKind::Crf, "CRF"),
                (HeadKind::BilstmCrf, "BiLSTM-CRF"),
            ] {
                ui.radio_value(&mut s.config.model.head, h, name);
            }
        });
        problems.ui(ui, "model.head");
    });
    ui.end_row();
    let l = ui.label("Method");
    ui.vertical(|ui| {
        egui::ComboBox::from_id_salt("method")
            .selected_text(
                Method::ALL
                    .iter()
                    .find(|(m, _)| *m == s.method)
                    .map_or("", |(_, n)| *n),
            )
            .show_ui(ui, |ui| {
                for (m, name) in Method::ALL {
                    ui.selectable_value(&mut s.method, m, name);
                }
            })
            .response
            .labelled_by(l.id);
        if s.method == Method::ManerBaseline2 {
            number_ui(
                ui,
                "word mask probability",
                &mut s.config.model.word_mask_prob,
                0.0..=0.95,
                0.01,
            );
        }
        if s.method == Method::Prompt {
            label_words_ui(
                ui,
                &mut s.label_words_text,
                &mut s.config.model.fresh_mlm_head,
            );
        }
        problems.ui(ui, "model.marker");
    });
    ui.end_row();
}

/// Prompt label words per type (`PER=person, LOC=location`); unlisted types take nerlab's
/// defaults (docs/METHODS.md).
fn label_words_ui(ui: &mut Ui, text: &mut String, fresh_mlm_head: &mut bool) {
    ui.horizontal(|ui| {
        let l = ui.label("label words");
        ui.add(
            egui::TextEdit::singleline(text)
                .desired_width(300.0)
                .id_salt("label-words")
                .hint_text("PER=person, LOC=location (others: defaults)"),
        )
        .labelled_by(l.id);
        ui.checkbox(fresh_mlm_head, "fresh MLM head")
            .on_hover_text("for models without a pretrained MLM head (ELECTRA discriminators, e5)");
    });
}

/// `PER=person, LOC=location` as a map (entries without both sides are left out).
fn parse_label_words(text: &str) -> std::collections::BTreeMap<String, String> {
    text.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(t, w)| (t.trim().to_string(), w.trim().to_string()))
        .filter(|(t, w)| !t.is_empty() && !w.is_empty())
        .collect()
}

/// The grid rows of few-shot sampling, the run to start from, the polyglot fine-tuning stage and
/// the tricks.
fn data_rows_ui(s: &mut LauncherState, ui: &mut Ui, problems: &Problems<'_>) {
    ui.label("Few-shot");
    ui.horizontal(|ui| {
        let d = &mut s.config.data;
        shots_ui(ui, "first-stage", &mut d.k_shot);
        number_ui(
            ui,
            "max sentences (0 = all)",
            &mut d.max_sentences,
            0..=1_000_000,
            1.0,
        );
    });
    problems.ui(ui, "data.k_shot");
    ui.end_row();
    let l = ui.label("Start from run").on_hover_text(
        "Another run's best model (its folder, or a model folder such as runs/x/stage1-best) \
         instead of the model above: train a source once, fine-tune it many times",
    );
    ui.vertical(|ui| {
        ui.horizontal(|ui| {
            let mut text = s.config.init_from.clone().unwrap_or_default();
            ui.add(
                egui::TextEdit::singleline(&mut text)
                    .desired_width(300.0)
                    .id_salt("init-from")
                    .hint_text("none: start from the model"),
            )
            .labelled_by(l.id);
            s.config.init_from = Some(text.trim().to_string()).filter(|t| !t.is_empty());
            ui.label("its head:");
            for (h, name) in [
                (InitHead::Remap, "remap labels"),
                (InitHead::Keep, "keep"),
                (InitHead::Fresh, "fresh"),
            ] {
                ui.radio_value(&mut s.config.init_head, h, name);
            }
        });
        problems.ui(ui, "init_from");
    });
    ui.end_row();
    ui.label("Polyglot, then fine-tune");
    ui.vertical(|ui| {
        ui.checkbox(&mut s.use_finetune, "then fine-tune on a target corpus");
        if s.use_finetune {
            ui.add(
                egui::TextEdit::singleline(&mut s.finetune_text)
                    .desired_width(420.0)
                    .id_salt("finetune-text")
                    .hint_text("fine-tuning corpus"),
            );
            let f = s.config.finetune.get_or_insert_with(Default::default);
            ui.horizontal(|ui| shots_ui(ui, "target", &mut f.k_shot));
            problems.ui(ui, "finetune");
        }
    });
    ui.end_row();
    ui.label("Tricks");
    ui.horizontal_wrapped(|ui| {
        let t = &mut s.config.train;
        number_ui(ui, "FGM ε", &mut t.fgm_epsilon, 0.0..=10.0, 0.05);
        number_ui(ui, "R-Drop α", &mut t.rdrop_alpha, 0.0..=10.0, 0.05);
        number_ui(
            ui,
            "multi-sample dropout K",
            &mut s.config.model.msd_samples,
            1..=16,
            1.0,
        );
    });
    ui.end_row();
    ui.label("Trick variants");
    ui.horizontal_wrapped(|ui| {
        let (t, m) = (&mut s.config.train, &mut s.config.model);
        ui.label("R-Drop KL:");
        ui.radio_value(&mut t.rdrop_kl, RdropKl::Mean, "½ both directions (paper)")
            .on_hover_text("½ (KL(p1‖p2) + KL(p2‖p1)), as Liang et al. (2021) write it");
        ui.radio_value(&mut t.rdrop_kl, RdropKl::Sum, "sum (KLUE source)")
            .on_hover_text("KL(p1‖p2) + KL(p2‖p1), as the KLUE BiLSTM-CRF source adds it");
        ui.separator();
        ui.label("dropout samples average:");
        ui.radio_value(&mut m.msd_average, MsdAverage::Logits, "logits")
            .on_hover_text("one loss on the class scores averaged over the masks (KLUE source)");
        ui.radio_value(&mut m.msd_average, MsdAverage::Loss, "losses")
            .on_hover_text("the mean of the K losses (Inoue 2019)");
    });
    ui.end_row();
    ui.label("Model details");
    ui.horizontal_wrapped(|ui| {
        let m = &mut s.config.model;
        let mut unconstrained = !m.constrained;
        ui.checkbox(&mut unconstrained, "unconstrained CRF")
            .on_hover_text("allow every tag transition, as the KLUE BiLSTM-CRF source does");
        m.constrained = !unconstrained;
        number_ui(ui, "max length", &mut m.max_length, 0..=4096, 1.0)
            .on_hover_text("longest window in tokens (0: the encoder's limit)");
        ui.separator();
        ui.label("KLUE units:");
        ui.radio_value(&mut m.char_units, CharUnits::Subwords, "subwords")
            .on_hover_text(
                "KLUE's baseline: every subword a unit, labelled by its first character",
            );
        ui.radio_value(&mut m.char_units, CharUnits::Characters, "characters")
            .on_hover_text("every character its own word (seed 003)");
    });
    ui.end_row();
}

/// The grid row of epochs, batch, learning rates, schedule, clipping, patience and seed.
fn optimization_row_ui(s: &mut LauncherState, ui: &mut Ui, problems: &Problems<'_>) {
    ui.label("Optimization");
    ui.vertical(|ui| {
        let t = &mut s.config.train;
        ui.horizontal_wrapped(|ui| {
            number_ui(ui, "epochs", &mut t.epochs, 0..=1000, 1.0);
            number_ui(ui, "batch", &mut t.batch_size, 1..=1024, 1.0);
            labeled(ui, "lr", lr_value(&mut t.lr));
            let mut head_lr = t.head_lr.is_some();
            if ui.checkbox(&mut head_lr, "head lr").changed() {
                t.head_lr = head_lr.then_some(t.lr * 20.0);
            }
            if let Some(h) = t.head_lr.as_mut() {
                ui.add(lr_value(h))
                    .on_hover_text("learning rate of the head");
            }
        });
        ui.horizontal_wrapped(|ui| {
            number_ui(ui, "warmup", &mut t.warmup_ratio, 0.0..=0.9, 0.01);
            egui::ComboBox::from_id_salt("schedule")
                .selected_text(format!("{:?}", t.schedule))
                .show_ui(ui, |ui| {
                    for sch in [Schedule::Linear, Schedule::Cosine, Schedule::Constant] {
                        ui.selectable_value(&mut t.schedule, sch, format!("{sch:?}"));
                    }
                })
                .response
                .on_hover_text("learning-rate schedule");
            number_ui(ui, "clip", &mut t.clip_norm, 0.0..=100.0, 0.1);
            number_ui(ui, "patience", &mut t.patience, 0..=100, 1.0);
            labeled(ui, "seed", egui::DragValue::new(&mut s.config.seed));
        });
        problems.ui(ui, "train");
    });
    ui.end_row();
}

/// A labelled number field within `range`, moving by `speed` per point dragged.
fn number_ui<N: egui::emath::Numeric>(
    ui: &mut Ui,
    label: &str,
    value: &mut N,
    range: RangeInclusive<N>,
    speed: f64,
) -> egui::Response {
    labeled(
        ui,
        label,
        egui::DragValue::new(value).range(range).speed(speed),
    )
}

/// A stage's sampling: every sentence, or K shots (0: zero-shot, evaluated only).
fn shots_ui(ui: &mut Ui, id: &str, shots: &mut Shots) {
    let mut all = *shots == Shots::All;
    ui.checkbox(&mut all, "all sentences")
        .on_hover_text("Off: a K-shot sample (every type at least K mentions); K = 0 is zero-shot");
    match (all, *shots) {
        (true, _) => *shots = Shots::All,
        (false, Shots::All) => *shots = Shots::K(5),
        (false, Shots::K(_)) => {}
    }
    if let Shots::K(k) = shots {
        ui.push_id(id, |ui| {
            number_ui(ui, "K (0 = zero-shot)", k, 0..=1000, 1.0)
        });
    }
}

/// A learning-rate field: 1e-7 to 1, shown as `1.0e-5`.
fn lr_value(lr: &mut f64) -> egui::DragValue<'_> {
    egui::DragValue::new(lr)
        .range(1e-7..=1.0)
        .speed(1e-5)
        .custom_formatter(|v, _| format!("{v:.1e}"))
}

/// The grid row of the device and the thread count.
fn device_row_ui(s: &mut LauncherState, ui: &mut Ui) {
    ui.label("Device");
    ui.horizontal(|ui| {
        ui.radio_value(&mut s.config.device, DeviceSpec::Cpu, "CPU");
        ui.radio_value(&mut s.config.device, DeviceSpec::Cuda(0), "CUDA 0");
        let mut threads = s.config.threads.unwrap_or(0);
        if number_ui(ui, "threads (0 = all but one)", &mut threads, 0..=256, 1.0).changed() {
            s.config.threads = (threads > 0).then_some(threads);
        }
    });
    ui.end_row();
}

/// Keys the launcher offers to vary; any dotted key of the configuration can be typed.
const AXES: [&str; 6] = [
    "seed",
    "data.k_shot",
    "model.head",
    "train.lr",
    "train.epochs",
    "train.fgm_epsilon",
];

/// Turns the configured run into an experiment that varies one key (written as a file, then
/// opened on the experiment page).
/// "Open a trained model": a model trained elsewhere (a Hugging Face token-classification
/// checkpoint, a saved model folder, a run on another disk) evaluated on a corpus, then listed
/// read-only beside the runs, where every panel and the tagger work on it.
fn inspect_ui(s: &mut LauncherState, ui: &mut Ui, theme: theme::Theme, actions: &mut Vec<Action>) {
    ui.collapsing(
        "Open a trained model (a Hugging Face token-classification checkpoint, a model folder, \
         another run) and evaluate it",
        |ui| {
            egui::Grid::new("inspect-grid")
                .num_columns(2)
                .spacing([12.0, 6.0])
                .show(ui, |ui| {
                    text_row(
                        ui,
                        "Trained model",
                        "A folder with config.json (architectures: *ForTokenClassification, \
                         id2label), hf:<repo>[@revision] from the Hub cache, or a run / model folder",
                        &mut s.inspect_model,
                        "",
                        "inspect-model",
                    );
                    text_row(ui, "Evaluate on", "", &mut s.inspect_data, "", "inspect-data");
                    text_row(
                        ui,
                        "Label map",
                        "FROM=TO pairs, comma-separated: types (PER=PS, MISC=O) or whole labels \
                         (LABEL_3=B-PS). KLUE <-> CoNLL-style types match without any.",
                        &mut s.inspect_map,
                        "PER=PS, MISC=O",
                        "inspect-map",
                    );
                    text_row(
                        ui,
                        "State dict: encoder",
                        "For a PyTorch state dict (model.pt): the folder or hf:<repo> with its \
                         encoder's config.json and tokenizer (empty: the file's own folder)",
                        &mut s.inspect_encoder,
                        "hf:monologg/koelectra-base-v3-discriminator",
                        "inspect-encoder",
                    );
                    text_row(
                        ui,
                        "State dict: labels",
                        "Its outputs in order: klue (KLUE's 13 in korean_ner's order), a file \
                         with one per line, or A,B,C (empty: labels.txt beside the file)",
                        &mut s.inspect_labels,
                        "klue",
                        "inspect-labels",
                    );
                });
            let mut labels = crate::data::label_map::LabelMap::default();
            let mut problem = None;
            for pair in s.inspect_map.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if let Err(e) = labels.add_pair(pair) {
                    problem = Some(e.to_string());
                }
            }
            if let Some(p) = &problem {
                error_text_ui(ui, p, theme);
            }
            let ready = problem.is_none()
                && !s.inspect_model.trim().is_empty()
                && !s.inspect_data.trim().is_empty();
            if ui
                .add_enabled(ready, egui::Button::new("Open and evaluate"))
                .clicked()
            {
                let model = s.inspect_model.trim().to_string();
                actions.push(Action::Send(Command::OpenModel {
                    model: model.clone(),
                    data: s.inspect_data.trim().to_string(),
                    labels,
                    torch: crate::infer::TorchOptions {
                        encoder: Some(s.inspect_encoder.trim().to_string())
                            .filter(|e| !e.is_empty()),
                        labels: Some(s.inspect_labels.trim().to_string())
                            .filter(|l| !l.is_empty()),
                        ..Default::default()
                    },
                }));
                actions.push(Action::Select(super::super::store::opened_name(&model)));
            }
        },
    );
}

fn experiment_ui(
    s: &mut LauncherState,
    ui: &mut Ui,
    config: &RunConfig,
    ok: bool,
    actions: &mut Vec<Action>,
) {
    ui.collapsing(
        "Make it an experiment (vary one key over several values)",
        |ui| {
            ui.horizontal(|ui| {
                let l = ui.label("vary");
                ui.add(egui::TextEdit::singleline(&mut s.axis_key).desired_width(140.0))
                    .labelled_by(l.id);
                egui::ComboBox::from_label("(common keys)")
                    .selected_text("pick")
                    .show_ui(ui, |ui| {
                        for k in AXES {
                            if ui.selectable_label(s.axis_key == k, k).clicked() {
                                s.axis_key = k.to_string();
                            }
                        }
                    });
                let l = ui.label("over");
                ui.add(egui::TextEdit::singleline(&mut s.axis_values).desired_width(160.0))
                    .labelled_by(l.id);
                let l = ui.label("named");
                ui.add(
                    egui::TextEdit::singleline(&mut s.experiment_name)
                        .hint_text("by-seed")
                        .desired_width(120.0),
                )
                .labelled_by(l.id);
                let name = if s.experiment_name.trim().is_empty() {
                    format!("by-{}", s.axis_key.rsplit('.').next().unwrap_or("axis"))
                } else {
                    s.experiment_name.trim().to_string()
                };
                if ui
                    .add_enabled(ok, egui::Button::new("write and open"))
                    .on_hover_text("writes <runs folder>/<name>.experiment.toml and opens its page")
                    .clicked()
                {
                    actions.push(Action::MakeExperiment {
                        config: Box::new(config.clone()),
                        name,
                        axis: s.axis_key.clone(),
                        values: s.axis_values.clone(),
                    });
                }
            });
        },
    );
}

/// The start button, enabled once the configuration has no problems.
fn start_ui(ui: &mut Ui, config: &RunConfig, problems: &Problems<'_>, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        let ok = problems.errors.is_empty();
        let start = ui.add_enabled(ok, egui::Button::new(RichText::new("▶ Start run").strong()));
        if start.clicked() {
            actions.push(Action::Launch(Box::new(config.clone())));
        }
        if !ok {
            ui.colored_label(
                theme::error_text(problems.theme),
                format!("{} problem(s) to fix first", problems.errors.len()),
            );
        }
    });
}

/// The session's runs with their state and controls.
fn runs_table(ui: &mut Ui, cx: &PanelCtx<'_>, actions: &mut Vec<Action>) {
    ui.heading("Runs");
    egui::Grid::new("launcher-runs")
        .striped(true)
        .num_columns(5)
        .show(ui, |ui| {
            for (i, r) in cx.store.runs.iter().enumerate() {
                ui.label(RichText::new(&r.name).color(theme::run(i)));
                ui.label(r.phase.label());
                let progress = r.step as f32 / r.total_steps.max(1) as f32;
                ui.add(
                    egui::ProgressBar::new(progress)
                        .desired_width(120.0)
                        .text(format!("{}/{}", r.step, r.total_steps)),
                );
                ui.label(
                    r.best_f1
                        .map_or("-".to_string(), |f| format!("best F1 {f:.4}")),
                );
                ui.horizontal(|ui| {
                    if let Some(id) = r.id {
                        match r.phase {
                            Phase::Active(RunState::Running) => {
                                if ui.small_button("⏸ pause").clicked() {
                                    actions.push(Action::Send(Command::Pause(id)));
                                }
                                if ui.small_button("⏹ stop").clicked() {
                                    actions.push(Action::Send(Command::Stop(id)));
                                }
                            }
                            Phase::Active(RunState::Paused) => {
                                if ui.small_button("▶ resume").clicked() {
                                    actions.push(Action::Send(Command::Resume(id)));
                                }
                                if ui.small_button("⏹ stop").clicked() {
                                    actions.push(Action::Send(Command::Stop(id)));
                                }
                            }
                            Phase::Queued if ui.small_button("✖ cancel").clicked() => {
                                actions.push(Action::Send(Command::Stop(id)));
                            }
                            _ => {}
                        }
                    }
                    if let (Phase::Active(st), Some(dir)) = (r.phase, &r.dir)
                        && st.resumable()
                        && !r.phase.is_live()
                        && r.files.has_checkpoint
                        && ui.small_button("⟳ resume from checkpoint").clicked()
                    {
                        actions.push(Action::ResumeRun(dir.clone()));
                    }
                    if ui.small_button("inspect").clicked() {
                        actions.push(Action::Select(r.name.clone()));
                    }
                });
                ui.end_row();
            }
        });
    // Errors below the table, where they can wrap to the panel's width (a grid cell cannot).
    for r in cx.store.runs.iter().filter(|r| r.error.is_some()) {
        if let Some(e) = &r.error {
            error_text_ui(ui, &format!("{}: {e}", r.name), cx.theme);
        }
    }
    if cx.store.runs.is_empty() {
        ui.label("No runs yet: start one above.");
    }
}
