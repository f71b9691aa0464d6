//! Bytes to lines: strips a UTF-8 byte-order mark and CRLF line ends (both common in corpora made on
//! Windows, and one KMOU file has a BOM), and reports invalid UTF-8 with its line and column.

use std::path::Path;

use super::error::{DataError, Location};

/// Decoded text with what had to be cleaned away.
#[derive(Debug)]
pub struct Decoded {
    pub text: String,
    pub bom: bool,
}

/// An encoding other than UTF-8 that the bytes give away, with its name for `iconv -f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf16Le,
    Utf16Be,
    /// CP949 (Windows' Korean code page), a superset of EUC-KR: how older Korean corpora circulate.
    Cp949,
    /// ISO-8859-1 or Windows-1252: accented Latin letters, one byte each.
    Latin1,
}

impl Encoding {
    /// What to tell the user (`looks like UTF-16 (little-endian; byte-order mark FF FE)`).
    pub fn describe(self, bom: bool) -> String {
        match self {
            Self::Utf16Le if bom => {
                "the file looks like UTF-16 (little-endian; byte-order mark FF FE), not UTF-8"
                    .into()
            }
            Self::Utf16Be if bom => {
                "the file looks like UTF-16 (big-endian; byte-order mark FE FF), not UTF-8".into()
            }
            Self::Utf16Le | Self::Utf16Be => {
                "the file looks like UTF-16 (every other byte is NUL), not UTF-8".into()
            }
            Self::Cp949 => {
                "the file looks like CP949 / EUC-KR (Korean in two-byte pairs), not UTF-8".into()
            }
            Self::Latin1 => {
                "the file looks like Latin-1 (ISO-8859-1 or Windows-1252), not UTF-8".into()
            }
        }
    }

    /// `iconv`'s name for it.
    pub fn iconv(self) -> &'static str {
        match self {
            Self::Utf16Le | Self::Utf16Be => "UTF-16",
            Self::Cp949 => "CP949",
            Self::Latin1 => "LATIN1",
        }
    }
}

/// Recognises UTF-16 (a byte-order mark, or NUL in every other byte), CP949 / EUC-KR (every
/// non-ASCII byte in a lead/trail pair, mostly in KS X 1001's Hangul rows) and Latin-1 (lone
/// non-ASCII bytes among ASCII letters). `None` when the bytes do not say.
pub fn sniff_encoding(bytes: &[u8]) -> Option<(Encoding, bool)> {
    if let Some(utf16) = sniff_utf16(bytes) {
        return Some(utf16);
    }
    let sample = &bytes[..bytes.len().min(1 << 16)];
    if std::str::from_utf8(sample).is_ok() {
        return None;
    }
    sniff_legacy(sample)
}

/// UTF-16, by its byte-order mark or a NUL in every other byte of the first 64 KiB: the one
/// encoding whose ASCII is also valid UTF-8, so it must be recognised before decoding.
fn sniff_utf16(bytes: &[u8]) -> Option<(Encoding, bool)> {
    if bytes.starts_with(b"\xFF\xFE") {
        return Some((Encoding::Utf16Le, true));
    }
    if bytes.starts_with(b"\xFE\xFF") {
        return Some((Encoding::Utf16Be, true));
    }
    let sample = &bytes[..bytes.len().min(1 << 16)];
    let nul_at = |parity: usize| {
        sample
            .iter()
            .skip(parity)
            .step_by(2)
            .filter(|&&b| b == 0)
            .count()
    };
    let half = sample.len() / 2;
    // ASCII in UTF-16 has a NUL in every other byte; a UTF-8 corpus has almost none.
    if half >= 2 {
        let (even, odd) = (nul_at(0), nul_at(1));
        if odd * 4 >= half && even * 50 <= half {
            return Some((Encoding::Utf16Le, false));
        }
        if even * 4 >= half && odd * 50 <= half {
            return Some((Encoding::Utf16Be, false));
        }
    }
    None
}

/// CP949 / EUC-KR or Latin-1, from the byte patterns of a sample that is not UTF-8.
fn sniff_legacy(sample: &[u8]) -> Option<(Encoding, bool)> {
    let (mut pairs, mut hangul, mut i) = (0usize, 0usize, 0);
    let mut cp949 = true;
    while i < sample.len() {
        let b = sample[i];
        if b < 0x80 {
            i += 1;
            continue;
        }
        let next = sample.get(i + 1).copied();
        let trail = next.is_some_and(|t| matches!(t, 0x41..=0x5A | 0x61..=0x7A | 0x81..=0xFE));
        if (0x81..=0xFE).contains(&b) && trail {
            pairs += 1;
            if (0xB0..=0xC8).contains(&b) && next.is_some_and(|t| t >= 0xA1) {
                hangul += 1;
            }
            i += 2;
        } else {
            // A lone lead byte is allowed only where the sample cuts a pair in two.
            cp949 &= i + 1 == sample.len();
            i += 1;
        }
    }
    // A byte of 0xA0 or more between two ASCII bytes: one Latin-1 letter.
    let ascii = |k: Option<usize>| k.and_then(|k| sample.get(k)).is_none_or(|c| *c < 0x80);
    let lone = (0..sample.len())
        .filter(|&j| sample[j] >= 0xA0 && ascii(j.checked_sub(1)) && ascii(Some(j + 1)))
        .count();
    if cp949 && pairs > 0 && hangul * 2 >= pairs {
        return Some((Encoding::Cp949, false));
    }
    // One stray byte says nothing; two or more lone letters, most of the non-ASCII, do.
    let high = sample.iter().filter(|&&b| b >= 0x80).count();
    (lone >= 2 && lone * 2 >= high).then_some((Encoding::Latin1, false))
}

/// What to say about bytes that are not UTF-8, for files that are not corpora (configurations).
pub fn encoding_hint(bytes: &[u8]) -> Option<String> {
    sniff_encoding(bytes).map(|(e, bom)| {
        format!(
            "{}; convert it with `iconv -f {} -t UTF-8`",
            e.describe(bom),
            e.iconv()
        )
    })
}

/// Checks for emptiness and valid UTF-8, and removes a leading BOM. A file in another encoding
/// that the bytes give away (UTF-16, CP949, Latin-1) is named, with the `iconv` call that converts it.
pub fn decode(path: &Path, bytes: Vec<u8>) -> Result<Decoded, DataError> {
    if let Some((enc, bom)) = sniff_utf16(&bytes) {
        return Err(DataError::WrongEncoding {
            at: Location::new(path, 1),
            hint: enc.describe(bom),
            iconv: enc.iconv(),
        });
    }
    let (bom, body) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (true, rest.to_vec()),
        None => (false, bytes),
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DataError::EmptyFile(path.to_path_buf()));
    }
    if let Some(at) = body.iter().position(|&b| b == 0) {
        let line = body[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = body[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        return Err(DataError::NulByte {
            at: Location::new(path, line),
            column: at - line_start + 1,
        });
    }
    match String::from_utf8(body) {
        Ok(text) => Ok(Decoded { text, bom }),
        Err(err) => {
            let bytes = err.as_bytes();
            let bad = err.utf8_error().valid_up_to();
            let line = bytes[..bad].iter().filter(|&&b| b == b'\n').count() + 1;
            if let Some((enc, bom)) = sniff_encoding(bytes) {
                return Err(DataError::WrongEncoding {
                    at: Location::new(path, line),
                    hint: enc.describe(bom),
                    iconv: enc.iconv(),
                });
            }
            let line_start = bytes[..bad]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            Err(DataError::InvalidUtf8 {
                at: Location::new(path, line),
                column: bad - line_start + 1,
            })
        }
    }
}

/// Lines with their 1-based numbers, a trailing `\r` removed, and a stray BOM at the start of a
/// line (left by concatenating files) removed too. Also returns how many lines ended in CRLF.
pub fn lines(text: &str) -> (Vec<(usize, &str)>, usize) {
    let mut crlf = 0;
    let lines = text
        .split('\n')
        .enumerate()
        .map(|(i, line)| {
            let line = match line.strip_suffix('\r') {
                Some(l) => {
                    crlf += 1;
                    l
                }
                None => line,
            };
            (i + 1, line.strip_prefix('\u{feff}').unwrap_or(line))
        })
        .collect::<Vec<_>>();
    // `split` yields an empty last piece after a final newline; it is not a line of the file.
    let lines = match lines.split_last() {
        Some((&(_, ""), rest)) => rest.to_vec(),
        _ => lines,
    };
    (lines, crlf)
}

/// Consecutive non-blank lines, as sentences are laid out in every supported format.
pub fn blocks<'a>(
    lines: &[(usize, &'a str)],
    is_blank: impl Fn(&str) -> bool,
) -> Vec<Vec<(usize, &'a str)>> {
    let mut blocks = Vec::new();
    let mut current = Vec::new();
    for &(no, line) in lines {
        if is_blank(line) {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
        } else {
            current.push((no, line));
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    blocks
}

/// Blank lines between the first two blocks (1 when there are fewer than two).
pub fn gap(blocks: &[Vec<(usize, &str)>]) -> usize {
    match (
        blocks.first().and_then(|b| b.last()),
        blocks.get(1).and_then(|b| b.first()),
    ) {
        (Some(&(end, _)), Some(&(start, _))) => start.saturating_sub(end + 1).max(1),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_bom_and_crlf() {
        let d = decode(Path::new("x"), b"\xEF\xBB\xBFa\tO\r\nb\tO\r\n".to_vec()).unwrap();
        assert!(d.bom);
        let (lines, crlf) = lines(&d.text);
        assert_eq!(lines, vec![(1, "a\tO"), (2, "b\tO")]);
        assert_eq!(crlf, 2);
    }

    #[test]
    fn locates_invalid_utf8() {
        let err = decode(Path::new("f.tsv"), b"a\tO\nb\xff\tO\n".to_vec()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.tsv:2: invalid UTF-8 at byte 2 of the line, expected UTF-8 text"
        );
    }

    #[test]
    fn names_the_encoding_the_bytes_give_away() {
        let text = "서울\tB-LC\n에서\tO\n";
        let utf16le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let err = decode(Path::new("ko.tsv"), utf16le)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "ko.tsv:1: the file looks like UTF-16 (little-endian; byte-order mark FF FE), not UTF-8; \
             convert it with `iconv -f UTF-16 -t UTF-8 ko.tsv > ko.tsv.utf8`"
        );
        let ascii_be: Vec<u8> = "John\tB-PER\n"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(sniff_encoding(&ascii_be), Some((Encoding::Utf16Be, false)));
        // "서울\tB-LC" in CP949: 서 = B C 2D, 울 = BF EF.
        let cp949 = b"\xBC\xAD\xBF\xEF\tB-LC\n\xBF\xA1\xBC\xAD\tO\n".to_vec();
        let err = decode(Path::new("ko.tsv"), cp949).unwrap_err().to_string();
        assert!(err.contains("looks like CP949 / EUC-KR"), "{err}");
        assert!(err.contains("iconv -f CP949 -t UTF-8"), "{err}");
        // "Müller\tB-PER" in Latin-1.
        let latin1 = b"M\xFCller\tB-PER\nin\tO\nK\xF6ln\tB-LOC\n".to_vec();
        let err = decode(Path::new("de.tsv"), latin1).unwrap_err().to_string();
        assert!(err.contains("looks like Latin-1"), "{err}");
        // Plain UTF-8 and a stray bad byte in a long line say nothing of encodings.
        assert_eq!(sniff_encoding(text.as_bytes()), None);
        assert_eq!(sniff_encoding(b"\x80\x80\x80"), None);
        assert!(encoding_hint("ok".as_bytes()).is_none());
    }

    #[test]
    fn groups_blocks() {
        let (l, _) = lines("a\n\n\nb\nc\n");
        let b = blocks(&l, |s| s.trim().is_empty());
        assert_eq!(b, vec![vec![(1, "a")], vec![(4, "b"), (5, "c")]]);
    }
}
