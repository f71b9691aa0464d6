//! Drawing helpers shared by panels: sentences with coloured entity spans, and heatmaps.

use egui::text::{LayoutJob, TextFormat};
use egui::{Color32, FontId, Pos2, Rect, Sense, Stroke, Ui, Vec2};

use super::theme::{self, Theme};
use crate::data::Span;

/// A sentence (tokens joined as the corpus writes them) with spans underlined and shaded by type.
/// `spans` are token ranges; `label` says which side they come from ("gold", "pred").
pub fn sentence_job(
    tokens: &[String],
    spans: &[Span],
    space_tokens: bool,
    theme: Theme,
    size: f32,
) -> LayoutJob {
    let mut job = LayoutJob::default();
    let font = FontId::proportional(size);
    let plain = TextFormat {
        font_id: font.clone(),
        color: theme::body_text(theme),
        ..Default::default()
    };
    let mut i = 0;
    while i < tokens.len() {
        let span = spans.iter().find(|s| s.start == i && s.end > i);
        let end = span.map_or(i + 1, |s| s.end.min(tokens.len()));
        let mut text = String::new();
        for (k, tok) in tokens[i..end].iter().enumerate() {
            if k > 0 && !space_tokens {
                text.push(' ');
            }
            text.push_str(tok);
        }
        let format = match span {
            Some(s) => TextFormat {
                background: theme::entity_background(&s.ty, theme),
                underline: Stroke::new(1.5, theme::entity(&s.ty)),
                ..plain.clone()
            },
            None => plain.clone(),
        };
        job.append(&text, 0.0, format);
        if let Some(s) = span {
            job.append(
                s.ty.as_str(),
                0.0,
                TextFormat {
                    font_id: FontId::proportional(size * 0.8),
                    color: theme::entity(&s.ty),
                    valign: egui::Align::TOP,
                    ..Default::default()
                },
            );
        }
        if !space_tokens && end < tokens.len() {
            job.append(" ", 0.0, plain.clone());
        }
        i = end;
    }
    job
}

/// A label, then a widget named by it (for screen readers, and for tests that find widgets by
/// name).
pub fn labeled(
    ui: &mut Ui,
    text: impl Into<egui::WidgetText>,
    widget: impl egui::Widget,
) -> egui::Response {
    let label = ui.label(text);
    ui.add(widget).labelled_by(label.id)
}

/// The text of a sentence, for search and accessibility.
pub fn sentence_text(tokens: &[String], space_tokens: bool) -> String {
    if space_tokens {
        tokens.concat()
    } else {
        tokens.join(" ")
    }
}

/// A heatmap of `values` (rows x cols, each in [0, 1] for colour) with optional cell texts, row
/// and column labels. Returns the clicked cell.
pub struct Heatmap<'a> {
    pub id: &'a str,
    pub rows: &'a [String],
    pub cols: &'a [String],
    pub values: &'a [Vec<f32>],
    pub texts: Option<&'a [Vec<String>]>,
    pub cell: f32,
    pub theme: Theme,
    pub selected: Option<(usize, usize)>,
    /// Column labels drawn vertically (attention maps with many tokens).
    pub vertical_cols: bool,
    /// A tooltip at the hovered cell; off where the caller shows the hovered cell itself (a
    /// tooltip over a big map covers the controls above it).
    pub tooltip: bool,
}

/// What the pointer did on a heatmap this frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeatmapResponse {
    pub clicked: Option<(usize, usize)>,
    pub hovered: Option<(usize, usize)>,
}

impl Heatmap<'_> {
    /// Draws the map; returns the clicked cell (row, column).
    pub fn show(self, ui: &mut Ui) -> Option<(usize, usize)> {
        self.show_full(ui).clicked
    }

    /// Draws the map; returns the clicked and the hovered cell.
    pub fn show_full(self, ui: &mut Ui) -> HeatmapResponse {
        let font = FontId::proportional(12.0);
        let label_w = widest(ui, self.rows, &font) + 8.0;
        let col_label_h = if self.vertical_cols {
            widest(ui, self.cols, &font) + 8.0
        } else {
            20.0
        };
        let size = Vec2::new(
            label_w + self.cols.len() as f32 * self.cell,
            col_label_h + self.rows.len() as f32 * self.cell,
        );
        let (rect, response) = ui.allocate_exact_size(size, Sense::click());
        let (id, rows, cols) = (self.id, self.rows.len(), self.cols.len());
        response.widget_info(|| {
            egui::WidgetInfo::labeled(
                egui::Role::Image,
                true,
                format!("{id} heatmap, {rows} x {cols}"),
            )
        });
        let painter = ui.painter_at(rect);
        let origin = rect.min + Vec2::new(label_w, col_label_h);
        self.col_labels_ui(ui, &painter, origin, &font);
        for r in 0..self.rows.len() {
            self.row_ui(ui, &painter, origin, &font, r);
        }
        let hovered = response
            .hover_pos()
            .and_then(|p| cell_at(p, origin, self.cell, self.rows.len(), self.cols.len()));
        if let Some((r, c)) = hovered.filter(|_| self.tooltip) {
            self.tooltip_ui(&response, r, c);
        }
        let clicked = response
            .clicked()
            .then(|| response.interact_pointer_pos())
            .flatten()
            .and_then(|p| cell_at(p, origin, self.cell, self.rows.len(), self.cols.len()));
        HeatmapResponse { clicked, hovered }
    }

    /// The column labels above the cells whose top-left corner is `origin`, upright or vertical.
    fn col_labels_ui(&self, ui: &Ui, painter: &egui::Painter, origin: Pos2, font: &FontId) {
        let text_color = ui.visuals().text_color();
        for (c, name) in self.cols.iter().enumerate() {
            let x = origin.x + (c as f32 + 0.5) * self.cell;
            if self.vertical_cols {
                let galley = ui
                    .painter()
                    .layout_no_wrap(name.clone(), font.clone(), text_color);
                let shape = egui::epaint::TextShape::new(
                    Pos2::new(x - galley.size().y / 2.0, origin.y - 4.0),
                    galley,
                    text_color,
                )
                .with_angle(-std::f32::consts::FRAC_PI_2);
                painter.add(shape);
            } else {
                painter.text(
                    Pos2::new(x, origin.y - 4.0),
                    egui::Align2::CENTER_BOTTOM,
                    name,
                    font.clone(),
                    text_color,
                );
            }
        }
    }

    /// Row `r`: its label left of `origin`, then its cells with their texts and the selection.
    fn row_ui(&self, ui: &Ui, painter: &egui::Painter, origin: Pos2, font: &FontId, r: usize) {
        let y = origin.y + (r as f32 + 0.5) * self.cell;
        painter.text(
            Pos2::new(origin.x - 4.0, y),
            egui::Align2::RIGHT_CENTER,
            &self.rows[r],
            font.clone(),
            ui.visuals().text_color(),
        );
        for c in 0..self.cols.len() {
            let v = self
                .values
                .get(r)
                .and_then(|row| row.get(c))
                .copied()
                .unwrap_or(0.0);
            let cell = Rect::from_min_size(
                origin + Vec2::new(c as f32 * self.cell, r as f32 * self.cell),
                Vec2::splat(self.cell),
            );
            painter.rect_filled(cell.shrink(0.5), 1.0, theme::heat(v, self.theme));
            if self.selected == Some((r, c)) {
                painter.rect_stroke(
                    cell,
                    1.0,
                    Stroke::new(2.0, theme::pred_outline()),
                    egui::StrokeKind::Inside,
                );
            }
            if let Some(texts) = self.texts
                && let Some(t) = texts.get(r).and_then(|row| row.get(c))
                && !t.is_empty()
            {
                painter.text(
                    cell.center(),
                    egui::Align2::CENTER_CENTER,
                    t,
                    FontId::proportional(11.0),
                    theme::heat_text(v, self.theme),
                );
            }
        }
    }

    /// The hovered cell's row, column and text (or value) as a tooltip.
    fn tooltip_ui(&self, response: &egui::Response, r: usize, c: usize) {
        let v = self.values[r].get(c).copied().unwrap_or(0.0);
        let text = self
            .texts
            .and_then(|t| t.get(r).and_then(|row| row.get(c)).cloned())
            .unwrap_or_else(|| format!("{v:.3}"));
        response.clone().on_hover_text(format!(
            "row {}, column {}: {text}",
            self.rows[r], self.cols[c]
        ));
    }
}

/// The width of the widest of `texts` laid out in `font` on one line, at least 20 points.
fn widest(ui: &Ui, texts: &[String], font: &FontId) -> f32 {
    texts
        .iter()
        .map(|t| {
            ui.painter()
                .layout_no_wrap(t.clone(), font.clone(), Color32::WHITE)
                .size()
                .x
        })
        .fold(20.0f32, f32::max)
}

fn cell_at(p: Pos2, origin: Pos2, cell: f32, rows: usize, cols: usize) -> Option<(usize, usize)> {
    let d = p - origin;
    if d.x < 0.0 || d.y < 0.0 {
        return None;
    }
    let (c, r) = ((d.x / cell) as usize, (d.y / cell) as usize);
    (r < rows && c < cols).then_some((r, c))
}

/// Spans of the scoring view mapped to token positions of the sentence (KLUE's view skips
/// spaces; a span over `오후 5시` covers the space token too).
pub fn to_tokens(dev: &crate::protocol::DevView, sentence: usize, spans: &[Span]) -> Vec<Span> {
    let Some(pos) = dev.positions.get(sentence) else {
        return spans.to_vec();
    };
    spans
        .iter()
        .filter_map(|s| {
            let start = *pos.get(s.start)?;
            let end = *pos.get(s.end.checked_sub(1)?)? + 1;
            Some(Span::new(start, end, s.ty.clone()))
        })
        .collect()
}

/// One entry of [`sentence_list`]: (dev sentence, gold spans, predicted spans, a note), spans in
/// the scoring view.
pub type SentenceItem = (usize, Vec<Span>, Vec<Span>, String);

/// A scrolling, virtualized list of dev sentences, each shown twice: with its gold spans, then
/// with its predicted spans.
pub fn sentence_list(
    ui: &mut Ui,
    id: &str,
    dev: &crate::protocol::DevView,
    items: &[SentenceItem],
    theme: Theme,
) {
    sentence_list_labeled(ui, id, dev, items, ("gold", "pred"), theme);
}

/// [`sentence_list`] with other names for the two lines (two runs compared).
pub fn sentence_list_labeled(
    ui: &mut Ui,
    id: &str,
    dev: &crate::protocol::DevView,
    items: &[SentenceItem],
    labels: (&str, &str),
    theme: Theme,
) {
    let line = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
    let row_height = line * 3.0 + 6.0;
    egui::ScrollArea::both()
        .id_salt(id)
        .auto_shrink([false, false])
        .show_rows(ui, row_height, items.len(), |ui, range| {
            for (s, gold, pred, note) in &items[range] {
                let tokens = match dev.tokens.get(*s) {
                    Some(t) => t,
                    None => continue,
                };
                ui.vertical(|ui| {
                    let sid = dev.ids.get(*s).cloned().unwrap_or_else(|| format!("#{s}"));
                    ui.label(egui::RichText::new(format!("{sid}  {note}")).small().weak());
                    let line_ui = |ui: &mut Ui, colour: Color32, label: &str, spans: &[Span]| {
                        let job = sentence_job(
                            tokens,
                            &to_tokens(dev, *s, spans),
                            dev.space_tokens,
                            theme,
                            14.0,
                        );
                        ui.horizontal(|ui| {
                            ui.colored_label(colour, label);
                            ui.add(egui::Label::new(job).wrap_mode(egui::TextWrapMode::Extend));
                        });
                    };
                    line_ui(ui, theme::gold_outline(), labels.0, gold);
                    line_ui(ui, theme::pred_outline(), labels.1, pred);
                });
                ui.add_space(2.0);
            }
        });
}

/// An error message in the theme's error colour, wrapped to the width available, that copies
/// itself when clicked (messages name files and lines a user wants to paste elsewhere).
pub fn error_text_ui(ui: &mut Ui, text: &str, theme: Theme) {
    let label = egui::Label::new(egui::RichText::new(text).color(theme::error_text(theme)))
        .wrap()
        .sense(Sense::click());
    if ui.add(label).on_hover_text("click to copy").clicked() {
        ui.ctx().copy_text(text.to_string());
    }
}
