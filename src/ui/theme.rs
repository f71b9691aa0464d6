//! Every colour of the workbench, for light and dark themes: entity types, error categories,
//! curves and heatmaps. Panels ask here; none defines a colour of its own.

use egui::Color32;

use crate::metrics::errors::ErrorCategory;

/// Light or dark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Theme {
    #[default]
    Light,
    Dark,
}

impl Theme {
    pub fn visuals(self) -> egui::Visuals {
        match self {
            Self::Light => egui::Visuals::light(),
            Self::Dark => egui::Visuals::dark(),
        }
    }

    pub fn is_dark(self) -> bool {
        self == Self::Dark
    }
}

/// A colour-blind-safe qualitative palette (Okabe & Ito 2008), extended for corpora with many
/// types; entity types are assigned colours by a stable hash of their name.
const PALETTE: [(u8, u8, u8); 12] = [
    (0, 114, 178),
    (230, 159, 0),
    (0, 158, 115),
    (204, 121, 167),
    (86, 180, 233),
    (213, 94, 0),
    (240, 228, 66),
    (120, 94, 240),
    (0, 0, 0),
    (148, 103, 189),
    (140, 86, 75),
    (127, 127, 127),
];

/// Known types get fixed colours so screenshots and papers stay consistent.
fn fixed_index(ty: &str) -> Option<usize> {
    Some(match ty {
        "PS" | "PER" => 0,
        "LC" | "LOC" => 2,
        "OG" | "ORG" => 1,
        "DT" | "DATE" => 3,
        "TI" => 4,
        "QT" => 5,
        "MISC" => 7,
        _ => return None,
    })
}

/// The colour of an entity type (strong, for text and lines).
pub fn entity(ty: &str) -> Color32 {
    let i = fixed_index(ty).unwrap_or_else(|| {
        let h = ty.bytes().fold(2166136261u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(16777619)
        });
        (h as usize) % PALETTE.len()
    });
    let (r, g, b) = PALETTE[i];
    Color32::from_rgb(r, g, b)
}

/// The background of an entity span in running text.
pub fn entity_background(ty: &str, theme: Theme) -> Color32 {
    let c = entity(ty);
    let alpha = if theme.is_dark() { 90 } else { 60 };
    Color32::from_rgba_unmultiplied(c.r(), c.g(), c.b(), alpha)
}

pub fn error_category(c: ErrorCategory) -> Color32 {
    match c {
        ErrorCategory::Correct => Color32::from_rgb(0, 158, 115),
        ErrorCategory::Boundary => Color32::from_rgb(230, 159, 0),
        ErrorCategory::Type => Color32::from_rgb(204, 121, 167),
        ErrorCategory::BoundaryType => Color32::from_rgb(213, 94, 0),
        ErrorCategory::Spurious => Color32::from_rgb(86, 180, 233),
        ErrorCategory::Missed => Color32::from_rgb(120, 94, 240),
    }
}

/// Colour of the n-th run in overlaid curves.
pub fn run(n: usize) -> Color32 {
    let (r, g, b) = PALETTE[n % 8];
    Color32::from_rgb(r, g, b)
}

/// A sequential heat colour for a value in [0, 1] (white/black to deep blue, perceptually even
/// enough for counts).
pub fn heat(v: f32, theme: Theme) -> Color32 {
    let v = v.clamp(0.0, 1.0);
    let (lo, hi) = if theme.is_dark() {
        ((35.0, 38.0, 45.0), (86.0, 180.0, 233.0))
    } else {
        ((250.0, 250.0, 250.0), (8.0, 69.0, 148.0))
    };
    let mix = |a: f32, b: f32| (a + (b - a) * v.powf(0.6)) as u8;
    Color32::from_rgb(mix(lo.0, hi.0), mix(lo.1, hi.1), mix(lo.2, hi.2))
}

/// Text drawn over [`heat`]: dark on light cells, light on dark.
pub fn heat_text(v: f32, theme: Theme) -> Color32 {
    let dark_cell = if theme.is_dark() { v < 0.55 } else { v > 0.45 };
    if dark_cell {
        Color32::WHITE
    } else {
        Color32::BLACK
    }
}

/// Validation messages and run errors.
pub fn error_text(theme: Theme) -> Color32 {
    if theme.is_dark() {
        Color32::from_rgb(255, 120, 110)
    } else {
        Color32::from_rgb(190, 30, 30)
    }
}

/// Running text in sentence views.
pub fn body_text(theme: Theme) -> Color32 {
    if theme.is_dark() {
        Color32::from_gray(220)
    } else {
        Color32::from_gray(30)
    }
}

pub fn banner_background(theme: Theme) -> Color32 {
    if theme.is_dark() {
        Color32::from_rgb(110, 30, 30)
    } else {
        Color32::from_rgb(255, 225, 220)
    }
}

/// Gold and predicted span outlines in sentence views.
pub fn gold_outline() -> Color32 {
    Color32::from_rgb(0, 158, 115)
}

pub fn pred_outline() -> Color32 {
    Color32::from_rgb(213, 94, 0)
}

pub fn diagonal() -> Color32 {
    Color32::from_gray(150)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_stable() {
        // KLUE's and CoNLL's names of a type share a colour, and the fixed types are all distinct.
        assert_eq!(entity("PS"), entity("PER"));
        assert_eq!(entity("LC"), entity("LOC"));
        let fixed: std::collections::BTreeSet<[u8; 4]> =
            ["PER", "LOC", "ORG", "DATE", "TI", "QT", "MISC"]
                .map(|t| entity(t).to_array())
                .into();
        assert_eq!(fixed.len(), 7);
        // Other types are coloured by the FNV-1a hash of their name, pinned here so a type keeps
        // its colour across builds and machines: FNV-1a("AF_ROAD") % 12 == 9.
        assert_eq!(entity("AF_ROAD"), Color32::from_rgb(148, 103, 189));
        assert_eq!(entity("EVENT"), Color32::from_rgb(120, 94, 240));
    }

    #[test]
    fn heat_runs_from_the_background_to_blue_and_clamps() {
        assert_eq!(heat(0.0, Theme::Light), Color32::from_rgb(250, 250, 250));
        assert_eq!(heat(1.0, Theme::Light), Color32::from_rgb(8, 69, 148));
        assert_eq!(heat(1.0, Theme::Dark), Color32::from_rgb(86, 180, 233));
        assert_eq!(heat(-1.0, Theme::Light), heat(0.0, Theme::Light));
        assert_eq!(heat(2.0, Theme::Dark), heat(1.0, Theme::Dark));
        // Text stays readable: white on the dark end of the light theme, black on its light end.
        assert_eq!(heat_text(1.0, Theme::Light), Color32::WHITE);
        assert_eq!(heat_text(0.0, Theme::Light), Color32::BLACK);
    }
}
