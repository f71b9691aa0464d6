//! The single writer of a run folder: training holds an exclusive OS lock on `train.lock`
//! (`flock` on Unix) for as long as it runs. A second claim, by another process, another
//! `nerlab train --resume`, or the workbench, is refused while the first is held; the OS drops
//! the lock of a process that dies however it dies (killed, crashed, machine restarted), so a
//! stale claim is simply taken over. The file holds the claiming process's id, for messages.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::time::Duration;

use anyhow::Context;

use super::RunDir;
use super::files::LOCK;

/// Held while a run trains; dropping it releases the run folder.
#[derive(Debug)]
pub struct RunLock {
    file: File,
}

impl RunLock {
    /// Whether this claim is on the lock file now at `dir`: a folder renamed after its claim
    /// was opened (moved aside, another run created in its place) holds the claimed file
    /// elsewhere, and the claim says nothing of the run at `dir`.
    pub fn is_of(&self, dir: &std::path::Path) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            match (self.file.metadata(), std::fs::metadata(dir.join(LOCK))) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = dir;
            true
        }
    }
}

/// Whether a lock is held, and by whom (the process id its holder wrote, when readable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Free,
    Held { pid: Option<u32> },
}

/// Another training holds the run (or got it first): nothing is wrong with the run, someone else
/// is training it. The experiment runner skips such a run; a person is told who holds it.
#[derive(Debug, thiserror::Error)]
#[error("{} is being trained by {who}; stop it first", path.display())]
pub struct RunBusy {
    pub path: std::path::PathBuf,
    pub who: String,
}

impl RunDir {
    /// Claims the run for training. Refused while another claim is held, in this process or any
    /// other; a brief probe by a reader (see [`RunDir::claim_state`]) is waited out.
    pub fn claim(&self) -> anyhow::Result<RunLock> {
        let path = self.path.join(LOCK);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        for attempt in 0..20 {
            match file.try_lock() {
                Ok(()) => {
                    file.set_len(0)?;
                    file.rewind()?;
                    write!(file, "{}", std::process::id())?;
                    file.flush()?;
                    return Ok(RunLock { file });
                }
                Err(TryLockError::WouldBlock) if attempt < 19 => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TryLockError::WouldBlock) => break,
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()));
                }
            }
        }
        let who = match read_pid(&mut file) {
            Some(pid) if pid == std::process::id() => "this process".to_string(),
            Some(pid) => format!("process {pid}"),
            None => "another process".to_string(),
        };
        Err(RunBusy {
            path: self.path.clone(),
            who,
        }
        .into())
    }

    /// Whether someone holds the run's claim now (a shared probe, released at once).
    pub fn claim_state(&self) -> Claim {
        let Ok(mut file) = File::open(self.path.join(LOCK)) else {
            return Claim::Free;
        };
        match file.try_lock_shared() {
            Ok(()) => Claim::Free,
            Err(TryLockError::WouldBlock) => Claim::Held {
                pid: read_pid(&mut file),
            },
            // A file system without locks: nothing can be said, so assume nobody.
            Err(TryLockError::Error(_)) => Claim::Free,
        }
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_knows_when_its_folder_was_moved_and_replaced() {
        let tmp = super::super::TempRun::new("lock-moved");
        let claim = tmp.run.claim().unwrap();
        assert!(claim.is_of(&tmp.run.path));
        let aside = tmp.out.join("r.failed-1");
        std::fs::rename(&tmp.run.path, &aside).unwrap();
        assert!(claim.is_of(&aside));
        assert!(!claim.is_of(&tmp.run.path), "nothing at the old path");
        let again = RunDir::create(&tmp.out, "r").unwrap();
        let other = again.claim().unwrap();
        assert!(!claim.is_of(&again.path), "another folder in its place");
        assert!(other.is_of(&again.path));
    }

    #[test]
    fn one_claim_at_a_time_and_a_dead_holder_is_taken_over() {
        let tmp = super::super::TempRun::new("lock");
        let run = &tmp.run;
        assert_eq!(run.claim_state(), Claim::Free);
        let first = run.claim().unwrap();
        assert_eq!(
            run.claim_state(),
            Claim::Held {
                pid: Some(std::process::id())
            }
        );
        // A second claim in the same process (the workbench resuming a run it trains) is refused.
        let err = run.claim().unwrap_err().to_string();
        assert!(err.contains("being trained by this process"), "{err}");
        drop(first);
        assert_eq!(run.claim_state(), Claim::Free);
        // Another process holding it (flock(1) takes the same lock), then killed.
        if std::process::Command::new("flock")
            .arg("--version")
            .output()
            .is_ok()
        {
            // `-o`: the lock stays with flock itself, not with the `sleep` it runs.
            let mut holder = std::process::Command::new("flock")
                .arg("-o")
                .arg(run.path.join(LOCK))
                .args(["sleep", "30"])
                .spawn()
                .unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while run.claim_state() == Claim::Free && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(matches!(run.claim_state(), Claim::Held { .. }));
            assert!(run.claim().is_err());
            holder.kill().unwrap();
            holder.wait().unwrap();
            let _taken_over = run.claim().unwrap();
        }
    }
}
