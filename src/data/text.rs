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

/// Checks for emptiness and valid UTF-8, and removes a leading BOM.
pub fn decode(path: &Path, bytes: Vec<u8>) -> Result<Decoded, DataError> {
    let (bom, body) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (true, rest.to_vec()),
        None => (false, bytes),
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DataError::EmptyFile(path.to_path_buf()));
    }
    match String::from_utf8(body) {
        Ok(text) => Ok(Decoded { text, bom }),
        Err(err) => {
            let bytes = err.as_bytes();
            let bad = err.utf8_error().valid_up_to();
            let line = bytes[..bad].iter().filter(|&&b| b == b'\n').count() + 1;
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
    fn groups_blocks() {
        let (l, _) = lines("a\n\n\nb\nc\n");
        let b = blocks(&l, |s| s.trim().is_empty());
        assert_eq!(b, vec![vec![(1, "a")], vec![(4, "b"), (5, "c")]]);
    }
}
