//! Drawing helpers shared by panels: sentences with coloured entity spans, and heatmaps.

use egui::text::{LayoutJob, TextFormat};
use egui::{Color32, FontId, Pos2, Rect, Sense, Stroke, Ui, Vec2};

use super::theme::{self, Theme};
use crate::data::Span;

/// A sentence (tokens joined as the corpus writes them) with spans underlined and shaded by type.
/// `spans` are token ranges; `label` says which side they come from ("gold", "pred").
pub fn sentence_job(tokens: &[String], spans: &[Span], space_tokens: bool, theme: Theme, size: f32) -> LayoutJob {
    let mut job = LayoutJob::default();
    let font = FontId::proportional(size);
    let plain = TextFormat {
        font_id: font.clone(),
        color: if theme.is_dark() { Color32::from_gray(220) } else { Color32::from_gray(30) },
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
            job.append(&format!("{}", s.ty), 0.0, TextFormat {
                font_id: FontId::proportional(size * 0.7),
                color: theme::entity(&s.ty),
                valign: egui::Align::TOP,
                ..Default::default()
            });
        }
        if !space_tokens && end < tokens.len() {
            job.append(" ", 0.0, plain.clone());
        }
        i = end;
    }
    job
}

/// The text of a sentence, for search and accessibility.
pub fn sentence_text(tokens: &[String], space_tokens: bool) -> String {
    if space_tokens { tokens.concat() } else { tokens.join(" ") }
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
}

impl Heatmap<'_> {
    pub fn show(self, ui: &mut Ui) -> Option<(usize, usize)> {
        let font = FontId::proportional(12.0);
        let label_w = self
            .rows
            .iter()
            .map(|r| ui.fonts_mut(|f| f.layout_no_wrap(r.clone(), font.clone(), Color32::WHITE).size().x))
            .fold(20.0f32, f32::max)
            + 8.0;
        let col_label_h = if self.vertical_cols {
            self.cols
                .iter()
                .map(|c| ui.fonts_mut(|f| f.layout_no_wrap(c.clone(), font.clone(), Color32::WHITE).size().x))
                .fold(20.0f32, f32::max)
                + 8.0
        } else {
            20.0
        };
        let size = Vec2::new(label_w + self.cols.len() as f32 * self.cell, col_label_h + self.rows.len() as f32 * self.cell);
        let (rect, response) = ui.allocate_exact_size(size, Sense::click());
        let painter = ui.painter_at(rect);
        let text_color = ui.visuals().text_color();
        let origin = rect.min + Vec2::new(label_w, col_label_h);
        for (c, name) in self.cols.iter().enumerate() {
            let x = origin.x + (c as f32 + 0.5) * self.cell;
            if self.vertical_cols {
                let galley = ui.fonts_mut(|f| f.layout_no_wrap(name.clone(), font.clone(), text_color));
                let shape = egui::epaint::TextShape::new(Pos2::new(x - galley.size().y / 2.0, origin.y - 4.0), galley, text_color)
                    .with_angle(-std::f32::consts::FRAC_PI_2);
                painter.add(shape);
            } else {
                painter.text(Pos2::new(x, origin.y - 4.0), egui::Align2::CENTER_BOTTOM, name, font.clone(), text_color);
            }
        }
        for (r, name) in self.rows.iter().enumerate() {
            let y = origin.y + (r as f32 + 0.5) * self.cell;
            painter.text(Pos2::new(origin.x - 4.0, y), egui::Align2::RIGHT_CENTER, name, font.clone(), text_color);
            for c in 0..self.cols.len() {
                let v = self.values.get(r).and_then(|row| row.get(c)).copied().unwrap_or(0.0);
                let cell = Rect::from_min_size(origin + Vec2::new(c as f32 * self.cell, r as f32 * self.cell), Vec2::splat(self.cell));
                painter.rect_filled(cell.shrink(0.5), 1.0, theme::heat(v, self.theme));
                if self.selected == Some((r, c)) {
                    painter.rect_stroke(cell, 1.0, Stroke::new(2.0, theme::pred_outline()), egui::StrokeKind::Inside);
                }
                if let Some(texts) = self.texts
                    && let Some(t) = texts.get(r).and_then(|row| row.get(c))
                    && !t.is_empty()
                {
                    painter.text(cell.center(), egui::Align2::CENTER_CENTER, t, FontId::proportional(11.0), theme::heat_text(v, self.theme));
                }
            }
        }
        let hovered = response.hover_pos().and_then(|p| cell_at(p, origin, self.cell, self.rows.len(), self.cols.len()));
        if let Some((r, c)) = hovered {
            let v = self.values[r].get(c).copied().unwrap_or(0.0);
            let text = self.texts.and_then(|t| t.get(r).and_then(|row| row.get(c)).cloned()).unwrap_or_else(|| format!("{v:.3}"));
            response.clone().on_hover_text(format!("{} → {}: {text}", self.rows[r], self.cols[c]));
        }
        if response.clicked() {
            return response.interact_pointer_pos().and_then(|p| cell_at(p, origin, self.cell, self.rows.len(), self.cols.len()));
        }
        None
    }
}

fn cell_at(p: Pos2, origin: Pos2, cell: f32, rows: usize, cols: usize) -> Option<(usize, usize)> {
    let d = p - origin;
    if d.x < 0.0 || d.y < 0.0 {
        return None;
    }
    let (c, r) = ((d.x / cell) as usize, (d.y / cell) as usize);
    (r < rows && c < cols).then_some((r, c))
}
