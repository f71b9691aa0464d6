//! Free space before every save: a checkpoint of multilingual-e5-small with its optimizer state is
//! about 1.4 GB, and a grid fills a disk fast. A save that would not fit fails before writing a
//! byte, with the folder and both sizes named; the last good checkpoint stays current.

use std::path::Path;

/// Overrides the free space measured (bytes), so tests can stand in for a full disk.
pub const FREE_SPACE_OVERRIDE: &str = "NERLAB_FREE_BYTES";

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    if let Some(v) = std::env::var(FREE_SPACE_OVERRIDE)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Some(v);
    }
    fs2::available_space(dir).ok()
}

/// Fails when `needed` bytes do not fit in `free` (unknown free space passes).
pub fn check(dir: &Path, what: &str, needed: u64, free: Option<u64>) -> anyhow::Result<()> {
    match free {
        Some(free) if free < needed => anyhow::bail!(
            "not enough free space in {} to save {what}: it needs about {}, {} are free \
             (free some space, or keep fewer checkpoints with --keep-checkpoints, then resume)",
            dir.display(),
            human(needed),
            human(free)
        ),
        _ => Ok(()),
    }
}

/// `1.4 GB`, `310 MB`, `12 kB`.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.0} MB", b / 1e6)
    } else {
        format!("{:.0} kB", (b / 1e3).ceil())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_save_that_does_not_fit_names_the_folder_and_both_sizes() {
        let e = check(
            Path::new("/runs/a"),
            "a checkpoint",
            1_400_000_000,
            Some(310_000_000),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                "not enough free space in /runs/a to save a checkpoint: it needs about 1.4 GB, \
                 310 MB are free"
            ),
            "{e}"
        );
        assert!(check(Path::new("/r"), "x", 10, Some(10)).is_ok());
        assert!(check(Path::new("/r"), "x", 10, None).is_ok());
    }

    #[test]
    fn free_space_is_measured() {
        if std::env::var_os(FREE_SPACE_OVERRIDE).is_none() {
            assert!(free_bytes(Path::new("/")).is_some());
            assert_eq!(free_bytes(Path::new("/no/such/folder")), None);
        }
    }
}
