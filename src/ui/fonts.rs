//! Fonts for every script nerlab's corpora use. egui's default fonts have no Hangul, CJK,
//! Devanagari, Ethiopic or Arabic glyphs; these are appended as fallbacks (egui picks the first
//! font of a family that has the glyph), so Latin text keeps egui's own look. Licences are in
//! `assets/fonts/` and `assets/README.md`.

use std::sync::Arc;

use egui::{FontData, FontDefinitions, FontFamily};

/// (name, bytes) of each fallback font, in priority order.
const FALLBACKS: [(&str, &[u8]); 10] = [
    // Hangul (NanumGothic, OFL): Droid Sans Fallback has only 3 Hangul syllables.
    (
        "nanum-gothic",
        include_bytes!("../../assets/fonts/NanumGothic.ttf"),
    ),
    // Han and kana (Droid Sans Fallback, Apache-2.0).
    (
        "droid-sans-fallback",
        include_bytes!("../../assets/fonts/DroidSansFallbackFull.ttf"),
    ),
    (
        "noto-devanagari",
        include_bytes!("../../assets/fonts/NotoSansDevanagari-Regular.ttf"),
    ),
    (
        "noto-bengali",
        include_bytes!("../../assets/fonts/NotoSansBengali-Regular.ttf"),
    ),
    (
        "noto-telugu",
        include_bytes!("../../assets/fonts/NotoSansTelugu-Regular.ttf"),
    ),
    (
        "noto-gujarati",
        include_bytes!("../../assets/fonts/NotoSansGujarati-Regular.ttf"),
    ),
    (
        "noto-gurmukhi",
        include_bytes!("../../assets/fonts/NotoSansGurmukhi-Regular.ttf"),
    ),
    (
        "noto-ethiopic",
        include_bytes!("../../assets/fonts/NotoSansEthiopic-Regular.ttf"),
    ),
    (
        "noto-arabic",
        include_bytes!("../../assets/fonts/NotoSansArabic-Regular.ttf"),
    ),
    (
        "noto-myanmar",
        include_bytes!("../../assets/fonts/NotoSansMyanmar-Regular.ttf"),
    ),
];

/// egui's default fonts followed by the fallbacks, for both families.
pub fn definitions() -> FontDefinitions {
    let mut fonts = FontDefinitions::default();
    for (name, bytes) in FALLBACKS {
        fonts
            .font_data
            .insert(name.to_owned(), Arc::new(FontData::from_static(bytes)));
        for family in [FontFamily::Proportional, FontFamily::Monospace] {
            fonts
                .families
                .entry(family)
                .or_default()
                .push(name.to_owned());
        }
    }
    // egui's monospace font has arrows (→) and box symbols that the proportional fonts lack.
    if fonts.font_data.contains_key("Hack") {
        fonts
            .families
            .entry(FontFamily::Proportional)
            .or_default()
            .push("Hack".to_owned());
    }
    fonts
}

/// Installs [`definitions`] (once, at start-up: each change re-builds the font atlas).
pub fn install(ctx: &egui::Context) {
    ctx.set_fonts(definitions());
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_fallback_is_a_font_file() {
        for (name, bytes) in super::FALLBACKS {
            // TrueType fonts start with 0x00010000 (or "true"/"OTTO").
            assert!(
                bytes.starts_with(&[0, 1, 0, 0])
                    || bytes.starts_with(b"OTTO")
                    || bytes.starts_with(b"true"),
                "{name} is not a font file"
            );
        }
    }

    #[test]
    fn korean_and_other_scripts_resolve_to_glyphs() {
        use egui::epaint::{FontId, Fonts, TextOptions};
        // egui's own fonts lack Hangul, so this check means something.
        let mut plain = Fonts::new(TextOptions::default(), egui::FontDefinitions::default());
        assert!(!plain.has_glyph(&FontId::proportional(14.0), '삼'));
        let mut fonts = Fonts::new(TextOptions::default(), super::definitions());
        // Hangul (KLUE), Han (KLUE hanja), Devanagari (MultiCoNER hi), Ethiopic (MasakhaNER
        // amh), Arabic (WikiANN fa), the arrow of labels like "gold → predicted", and emoji icons.
        for text in [
            "삼성전자 이재용 회장이 서울에서",
            "漢字",
            "नई दिल्ली",
            "አዲስ አበባ",
            "تهران",
            "→",
            "⚠☀",
        ] {
            for family in [FontId::proportional(14.0), FontId::monospace(14.0)] {
                for c in text.chars().filter(|c| !c.is_whitespace()) {
                    assert!(
                        fonts.has_glyph(&family, c),
                        "no glyph for {c:?} ({:?}) in {text:?}",
                        family.family
                    );
                }
            }
        }
    }
}
