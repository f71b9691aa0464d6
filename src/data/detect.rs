//! Telling corpus formats apart by their content, and naming what a stray line looks like so a
//! "mixed formats" error can say which format the line belongs to.

use super::Format;

/// How many non-blank lines detection looks at.
const SAMPLE_LINES: usize = 400;

/// The format whose token line this is, if any.
pub fn line_format(line: &str) -> Option<Format> {
    if line.starts_with("##") {
        return None;
    }
    let tabs: Vec<&str> = line.split('\t').collect();
    match tabs.len() {
        2 if has_lang_prefix(tabs[0]) => return Some(Format::WikiannRaw),
        2 if tabs[0].chars().count() == 1 => return Some(Format::Klue),
        2 => return Some(Format::Wikiann),
        4 => return Some(Format::Kmou),
        1 => {}
        _ => return None,
    }
    let spaces: Vec<&str> = line.split(' ').collect();
    match spaces.as_slice() {
        [_, "_", "_", _] => Some(Format::Multiconer),
        [tok, tag] if !tok.is_empty() && !tag.is_empty() => Some(Format::Conll),
        _ => None,
    }
}

/// A phrase naming the format of a line, for error messages.
pub fn describe_line(line: &str) -> Option<&'static str> {
    if line.starts_with("##") {
        return Some("a KLUE/KMOU comment line (## ...)");
    }
    if line.starts_with("# id") {
        return Some("a MultiCoNER header (# id ...)");
    }
    line_format(line).map(Format::describe)
}

/// `lang:` as in Rahimi's release: two or three lowercase letters, optionally `-suffix`.
pub fn has_lang_prefix(token: &str) -> bool {
    lang_prefix(token).is_some()
}

/// Splits `en:Seoul` into `("en", "Seoul")`.
pub fn lang_prefix(token: &str) -> Option<(&str, &str)> {
    let (lang, rest) = token.split_once(':')?;
    let mut parts = lang.split('-');
    let head = parts.next()?;
    let ok_head = (2..=3).contains(&head.len()) && head.bytes().all(|b| b.is_ascii_lowercase());
    let ok_tail = parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    (ok_head && ok_tail && !rest.is_empty()).then_some((lang, rest))
}

/// Detects the format from the first lines of a file.
pub fn detect(lines: &[(usize, &str)]) -> Result<Format, String> {
    let sample: Vec<&str> = lines
        .iter()
        .map(|&(_, l)| l)
        .filter(|l| !l.trim().is_empty())
        .take(SAMPLE_LINES)
        .collect();
    if sample.is_empty() {
        return Err("no non-blank lines".into());
    }
    let comments = sample.iter().filter(|l| l.starts_with("##")).count();
    if sample.iter().any(|l| l.starts_with("# id")) {
        return Ok(Format::Multiconer);
    }
    let mut counts = [0usize; Format::ALL.len()];
    for line in &sample {
        if let Some(f) = line_format(line) {
            counts[Format::ALL.iter().position(|&x| x == f).unwrap_or(0)] += 1;
        }
    }
    let count = |f: Format| counts[Format::ALL.iter().position(|&x| x == f).unwrap_or(0)];
    let tab2 = count(Format::Klue) + count(Format::Wikiann) + count(Format::WikiannRaw);
    if count(Format::Kmou) > 0 && count(Format::Kmou) >= tab2 {
        // KMOU's blocks open with `##` lines; four tab-separated columns without them are more
        // likely a tab-separated CoNLL-2003 file (token, POS, chunk, tag), which read as KMOU
        // would silently become Korean sentences with `-DOCSTART-` rows in them.
        if comments == 0 {
            return Err(format!(
                "four tab-separated columns but no `##` header lines (first line: {:?}): not \
                 KMOU as nerlab knows it. A tab-separated CoNLL-2003 file (token, POS, chunk, \
                 tag)? Keep the first and last columns (token<TAB>tag); if it is KMOU without \
                 its headers, give the format (--format kmou, or data.format = \"kmou\")",
                sample[0].chars().take(60).collect::<String>()
            ));
        }
        return Ok(Format::Kmou);
    }
    if tab2 > 0 {
        if comments > 0 {
            return Ok(Format::Klue);
        }
        if count(Format::WikiannRaw) == tab2 {
            return Ok(Format::WikiannRaw);
        }
        return Ok(Format::Wikiann);
    }
    if count(Format::Multiconer) > 0 {
        return Ok(Format::Multiconer);
    }
    if count(Format::Conll) > 0 {
        return Ok(Format::Conll);
    }
    Err(format!(
        "the first lines match no known format (first line: {:?})",
        sample[0].chars().take(60).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(usize, &str)> {
        text.lines().enumerate().map(|(i, l)| (i + 1, l)).collect()
    }

    #[test]
    fn detects_every_format() {
        let cases = [
            ("## h\n## id\t경찰\n경\tB-OG\n찰\tI-OG\n", Format::Klue),
            ("Seoul\tB-LOC\nis\tO\n", Format::Wikiann),
            ("en:Seoul\tB-LOC\nen:is\tO\n", Format::WikiannRaw),
            ("\n# id 1\tdomain=en\neli _ _ B-PER\n", Format::Multiconer),
            ("Trump B-PER\naike O\n", Format::Conll),
            (
                "## 1\n## 오에\n## <오에:PER>\n오에\t오에\tNNG\tB-PER\n",
                Format::Kmou,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(detect(&lines(text)), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn rejects_unknown_shapes() {
        assert!(detect(&lines("a,b,c\n")).is_err());
    }

    #[test]
    fn four_tab_columns_without_kmou_headers_are_not_taken_for_kmou() {
        let conll = "-DOCSTART-\t-X-\t-X-\tO\n\nEU\tNNP\tB-NP\tB-ORG\nrejects\tVBZ\tB-VP\tO\n";
        let e = detect(&lines(conll)).unwrap_err();
        assert!(
            e.contains("no `##` header lines") && e.contains("--format kmou"),
            "{e}"
        );
    }

    #[test]
    fn lang_prefixes() {
        assert_eq!(lang_prefix("en:Seoul"), Some(("en", "Seoul")));
        assert_eq!(lang_prefix("zh-yue:x"), Some(("zh-yue", "x")));
        assert_eq!(lang_prefix("http://x"), None);
        assert_eq!(lang_prefix("EN:x"), None);
        assert_eq!(lang_prefix("en:"), None);
    }
}
