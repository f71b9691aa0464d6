//! The tagger: type text and see it tagged (on the worker, shortly after typing stops) by a run's
//! model, spans coloured by type with the confidence on hover; a second run side by side; and the
//! dev sentences where the two runs disagree.

use std::time::{Duration, Instant};

use egui::{RichText, Ui};
use serde::{Deserialize, Serialize};

use super::super::context::{Action, PanelCtx};
use super::super::store::{RunEntry, TagResult};
use super::super::theme::{self, Theme};
use super::super::widgets::{SentenceItem, sentence_list_labeled};
use crate::data::spans::lenient_spans;
use crate::infer::TextSpan;
use crate::protocol::Command;

/// How long typing must pause before the text is sent.
const DEBOUNCE: Duration = Duration::from_millis(350);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TaggerState {
    pub text: String,
    /// Run names (their best models).
    pub run_a: Option<String>,
    pub run_b: Option<String>,
    pub compare: bool,
    #[serde(skip)]
    edited: Option<Instant>,
    #[serde(skip)]
    sent: Option<(String, Option<String>, Option<String>)>,
    #[serde(skip)]
    counter: u64,
    #[serde(skip)]
    pub request_a: u64,
    #[serde(skip)]
    pub request_b: u64,
}

impl Default for TaggerState {
    fn default() -> Self {
        Self {
            text: "삼성전자 이재용 회장이 서울에서 기자회견을 열었다".into(),
            run_a: None,
            run_b: None,
            compare: false,
            edited: Some(Instant::now()),
            sent: None,
            counter: 0,
            request_a: 0,
            request_b: 0,
        }
    }
}

/// Text with its spans: plain pieces, and spans with background and hover text.
fn tagged_text(ui: &mut Ui, text: &str, spans: &[TextSpan], theme: Theme) {
    let chars: Vec<char> = text.chars().collect();
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing.x = 0.0;
        let mut at = 0;
        for s in spans {
            if s.start > at {
                ui.label(
                    RichText::new(
                        chars[at..s.start.min(chars.len())]
                            .iter()
                            .collect::<String>(),
                    )
                    .size(18.0),
                );
            }
            let piece: String = chars[s.start.min(chars.len())..s.end.min(chars.len())]
                .iter()
                .collect();
            ui.label(
                RichText::new(piece)
                    .size(18.0)
                    .background_color(theme::entity_background(&s.ty, theme))
                    .underline(),
            )
            .on_hover_text(format!("{} {:.1}%", s.ty, s.confidence * 100.0));
            ui.label(
                RichText::new(&s.ty)
                    .size(13.0)
                    .strong()
                    .color(theme::entity(&s.ty)),
            );
            at = s.end;
        }
        if at < chars.len() {
            ui.label(RichText::new(chars[at..].iter().collect::<String>()).size(18.0));
        }
    });
    if spans.is_empty() {
        ui.label(RichText::new("no entities found").weak());
    } else {
        let list: Vec<String> = spans
            .iter()
            .map(|s| format!("{} {} ({:.0}%)", s.ty, s.text, s.confidence * 100.0))
            .collect();
        ui.label(RichText::new(list.join(" · ")).weak());
    }
}

fn run_picker(ui: &mut Ui, id: &str, choice: &mut Option<String>, runs: &[&RunEntry]) {
    egui::ComboBox::from_id_salt(id)
        .selected_text(choice.clone().unwrap_or_else(|| "choose a run".into()))
        .show_ui(ui, |ui| {
            for r in runs {
                ui.selectable_value(choice, Some(r.name.clone()), &r.name);
            }
        })
        .response
        .on_hover_text(if id.ends_with('b') {
            "second run"
        } else {
            "run"
        });
}

/// Dev sentences where two runs' predictions differ (both runs scored on the same dev corpus).
pub fn disagreements(a: &RunEntry, b: &RunEntry) -> Vec<SentenceItem> {
    let (Some(da), Some(db)) = (a.dev.as_ref(), b.dev.as_ref()) else {
        return Vec::new();
    };
    if da.tokens != db.tokens {
        return Vec::new();
    }
    (0..da.pred.len().min(db.pred.len()))
        .filter(|&s| da.pred[s] != db.pred[s])
        .map(|s| {
            (
                s,
                lenient_spans(&da.pred[s]),
                lenient_spans(&db.pred[s]),
                String::new(),
            )
        })
        .collect()
}

pub fn ui(s: &mut TaggerState, ui: &mut Ui, cx: &PanelCtx<'_>) -> Vec<Action> {
    let mut actions = Vec::new();
    let runs: Vec<&RunEntry> = cx
        .store
        .runs
        .iter()
        .filter(|r| r.model_dir().is_some())
        .collect();
    if s.run_a
        .as_ref()
        .is_none_or(|a| !runs.iter().any(|r| &r.name == a))
    {
        s.run_a = cx
            .selected
            .filter(|r| r.model_dir().is_some())
            .or(runs.first().copied())
            .map(|r| r.name.clone());
    }
    ui.heading("Tag text");
    if runs.is_empty() {
        ui.label("No trained model yet: start a run (the offline demo takes about a minute).");
        return actions;
    }
    ui.horizontal(|ui| {
        ui.label("model");
        run_picker(ui, "tagger-a", &mut s.run_a, &runs);
        ui.checkbox(&mut s.compare, "compare with");
        if s.compare {
            run_picker(ui, "tagger-b", &mut s.run_b, &runs);
        }
    });
    text_ui(s, ui, cx, &mut actions);
    results_ui(s, ui, cx);
    if s.compare
        && let (Some(a), Some(b)) = (run_named(cx, &s.run_a), run_named(cx, &s.run_b))
    {
        ui.separator();
        disagreements_ui(ui, a, b, cx.theme);
    }
    actions
}

/// The run called `name`, if the store has it.
fn run_named<'a>(cx: &PanelCtx<'a>, name: &Option<String>) -> Option<&'a RunEntry> {
    name.as_ref()
        .and_then(|n| cx.store.runs.iter().find(|r| &r.name == n))
}

/// The text box; once typing has paused, the text is sent to each chosen run's model (once).
fn text_ui(s: &mut TaggerState, ui: &mut Ui, cx: &PanelCtx<'_>, actions: &mut Vec<Action>) {
    let edit = ui.add(
        egui::TextEdit::multiline(&mut s.text)
            .desired_rows(3)
            .desired_width(f32::INFINITY)
            .font(egui::TextStyle::Heading)
            .hint_text("문장을 입력하세요 / type a sentence")
            .id_salt("tagger-text"),
    );
    if edit.changed() {
        s.edited = Some(Instant::now());
    }
    // Debounce: send once typing has paused, and only what has not been sent.
    let wanted = (
        s.text.clone(),
        s.run_a.clone(),
        s.compare.then(|| s.run_b.clone()).flatten(),
    );
    if let Some(t) = s.edited {
        if t.elapsed() >= DEBOUNCE && s.sent.as_ref() != Some(&wanted) && !s.text.trim().is_empty()
        {
            for (which, run) in [(0, &wanted.1), (1, &wanted.2)] {
                if let Some(dir) = run_named(cx, run).and_then(RunEntry::model_dir) {
                    s.counter += 1;
                    let request = 1_000_000 + s.counter;
                    if which == 0 {
                        s.request_a = request;
                    } else {
                        s.request_b = request;
                    }
                    actions.push(Action::Send(Command::Tag {
                        request,
                        model: dir.to_path_buf(),
                        text: s.text.clone(),
                    }));
                }
            }
            s.sent = Some(wanted);
        } else if t.elapsed() < DEBOUNCE {
            ui.ctx().request_repaint_after(DEBOUNCE);
        }
    }
}

/// The tagged text of the first run, and of the second beside it when comparing.
fn results_ui(s: &TaggerState, ui: &mut Ui, cx: &PanelCtx<'_>) {
    let show = |ui: &mut Ui, name: &Option<String>, request: u64| {
        ui.label(RichText::new(name.clone().unwrap_or_default()).strong());
        match cx.store.tagged.get(&request) {
            Some(TagResult { text, spans, .. }) => tagged_text(ui, text, spans, cx.theme),
            None => {
                ui.spinner();
            }
        }
    };
    if s.compare && s.run_b.is_some() {
        ui.columns(2, |cols| {
            show(&mut cols[0], &s.run_a, s.request_a);
            show(&mut cols[1], &s.run_b, s.request_b);
        });
    } else {
        show(ui, &s.run_a, s.request_a);
    }
}

/// The dev sentences where runs `a` and `b` predict differently.
fn disagreements_ui(ui: &mut Ui, a: &RunEntry, b: &RunEntry, theme: Theme) {
    let diff = disagreements(a, b);
    match a.dev.as_ref() {
        Some(dev) if !diff.is_empty() || b.dev.is_some() => {
            ui.label(
                RichText::new(format!(
                    "{} dev sentences where the two runs disagree",
                    diff.len()
                ))
                .strong(),
            );
            sentence_list_labeled(ui, "tagger-disagree", dev, &diff, ("A", "B"), theme);
        }
        _ => {
            ui.label("Load both runs' dev predictions (inspect them) to list their disagreements.");
        }
    }
}
