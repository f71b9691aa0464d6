//! Where tensors live and how many CPU threads work on them.

use std::str::FromStr;

use anyhow::bail;
use candle_core::{DType, Device};

/// A device named on the command line: `cpu` or `cuda:N`. Configuration files spell it the same
/// way (`device = "cpu"`); the spellings of older run folders (`"Cpu"`, `{ Cuda = 0 }`) still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            _ => lower
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("unknown device {s:?}: expected cpu or cuda:N")),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl serde::Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// `{ Cuda = 0 }`, as nerlab wrote it before the device had one spelling.
        #[derive(serde::Deserialize)]
        enum Old {
            Cpu,
            Cuda(usize),
        }
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Name(String),
            Old(Old),
        }
        match Repr::deserialize(d)? {
            Repr::Name(name) => name.parse().map_err(serde::de::Error::custom),
            Repr::Old(Old::Cpu) => Ok(Self::Cpu),
            Repr::Old(Old::Cuda(n)) => Ok(Self::Cuda(n)),
        }
    }
}

impl DeviceSpec {
    /// The candle device; CUDA needs a build with `--features cuda`.
    pub fn device(self) -> anyhow::Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => {
                if !candle_core::utils::cuda_is_available() {
                    bail!(
                        "cuda:{n} requested, but this nerlab was built without the `cuda` feature"
                    );
                }
                Ok(Device::new_cuda(n)?)
            }
        }
    }

    /// Compute dtype: f32 on CPU, bf16 on GPUs (f32 master weights are the trainer's business);
    /// on the CPU, the GPU path's dtype when [`GPU_PATH`] asks for it.
    pub fn compute_dtype(self) -> DType {
        match self {
            Self::Cpu => gpu_path().unwrap_or(DType::F32),
            Self::Cuda(_) => DType::BF16,
        }
    }
}

/// `NERLAB_GPU_PATH=f32` or `=bf16`: on the CPU, take the path CUDA takes (candle's ops and
/// autograd instead of the fused kernels and their taped backward, tensor AdamW instead of the
/// host loops, dense embedding updates), in that dtype, with f32 master weights under bf16. It
/// is how the GPU path is tested without a GPU (docs/RELIABILITY.md); read once per process.
pub const GPU_PATH: &str = "NERLAB_GPU_PATH";

/// The dtype [`GPU_PATH`] asks for, if it is set (an unknown value is refused at once: a typo
/// must not silently test the fast path).
pub fn gpu_path() -> Option<DType> {
    static PATH: std::sync::OnceLock<Option<DType>> = std::sync::OnceLock::new();
    *PATH.get_or_init(|| {
        let v = std::env::var(GPU_PATH).ok()?;
        match v.as_str() {
            "f32" => Some(DType::F32),
            "bf16" => Some(DType::BF16),
            other => {
                eprintln!("error: {GPU_PATH}={other:?}: expected f32 or bf16");
                std::process::exit(2)
            }
        }
    })
}

/// Threads for tensor work: `requested`, or all cores but one (left for the UI), at least one.
pub fn default_threads(requested: Option<usize>) -> usize {
    requested
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1))
                .unwrap_or(1)
        })
        .max(1)
}

/// A pool of `threads` compute threads. Work given to its `install` runs on one of them (not on
/// the caller's thread), so a long-lived loop that must stay on its own named thread installs
/// each piece of work, never itself.
pub fn thread_pool(threads: usize) -> anyhow::Result<rayon::ThreadPool> {
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("nerlab-compute-{i}"))
        .build()?)
}

/// At most this many lanes (each holds one batch's activations at a time).
pub const MAX_LANES: usize = 8;

/// How many lanes `threads` threads make for `items` independent batches: one per thread, at
/// least two batches a lane (fewer batches run one after another on every thread, as before),
/// at most [`MAX_LANES`].
pub fn lanes_for(threads: usize, items: usize) -> usize {
    threads.min(items / 2).clamp(1, MAX_LANES)
}

/// `f` over `items` in `lanes` at once, the lanes sharing `threads` threads (one each on this
/// 2-core machine), each lane a pool that takes the next item as it finishes one; the results in
/// `items`' order. Independent batches of inference run this way instead of one after another
/// with every thread on each: a batch's ops then need fewer barriers between threads, and while
/// one lane is in a serial stretch (batching, a row kernel, decoding) another computes. Each
/// item's numbers are those of a serial run (the kernels split work across threads, never a
/// sum). One lane runs everything on the current pool, as before. An error or a panic in a lane
/// stops the others at their next item and is returned (the panic resumed, with its message).
pub fn in_lanes<T: Sync, R: Send>(
    items: &[T],
    lanes: usize,
    threads: usize,
    f: impl Fn(&T) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Mutex, PoisonError};
    let lanes = lanes.min(items.len());
    if lanes <= 1 {
        return items.iter().map(&f).collect();
    }
    let threads = threads.max(lanes);
    let pools = (0..lanes)
        .map(|l| thread_pool(threads / lanes + usize::from(l < threads % lanes)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    type Panic = Box<dyn std::any::Any + Send>;
    let failed: Mutex<Option<Result<anyhow::Error, Panic>>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for pool in &pools {
            let (next, done, failed, f) = (&next, &done, &failed, &f);
            scope.spawn(move || {
                pool.install(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        let result =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(item)));
                        let failure = match result {
                            Ok(Ok(r)) => {
                                done.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(r);
                                continue;
                            }
                            Ok(Err(e)) => Ok(e),
                            Err(panic) => Err(panic),
                        };
                        failed
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get_or_insert(failure);
                        // The other lanes stop at their next item.
                        next.store(items.len(), Ordering::Relaxed);
                        break;
                    }
                });
            });
        }
    });
    match failed.into_inner().unwrap_or_else(PoisonError::into_inner) {
        Some(Ok(e)) => return Err(e),
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        None => {}
    }
    done.into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .into_iter()
        .map(|r| r.ok_or_else(|| anyhow::anyhow!("a lane left an item undone")))
        .collect()
}

/// Runs `f` with candle's CPU work limited to `threads` (candle's matmul runs on the current rayon
/// pool, so a pool of that size caps it without touching the process environment). Already inside
/// a pool of that size (the worker's), `f` runs there: the cap is not built twice.
pub fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    let threads = threads.max(1);
    if rayon::current_thread_index().is_some() && rayon::current_num_threads() == threads {
        return Ok(f());
    }
    Ok(thread_pool(threads)?.install(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("cuda:1".parse(), Ok(DeviceSpec::Cuda(1)));
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");
        assert_eq!(default_threads(Some(3)), 3);
        assert_eq!(default_threads(Some(0)), 1, "clamped to one");
        // All cores but one are left to tensor work, and a one-core machine still gets a thread.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(default_threads(None), cores.saturating_sub(1).max(1));
        assert_eq!(with_threads(1, rayon::current_num_threads).unwrap(), 1);
    }

    #[test]
    fn pool_work_leaves_the_calling_thread_and_nested_caps_reuse_the_pool() {
        let pool = thread_pool(2).unwrap();
        let name = pool.install(|| std::thread::current().name().map(String::from));
        assert!(name.unwrap().starts_with("nerlab-compute-"));
        let (outer, inner) = pool.install(|| {
            let outer = std::thread::current().id();
            (
                outer,
                with_threads(2, || std::thread::current().id()).unwrap(),
            )
        });
        assert_eq!(outer, inner);
    }
}

#[cfg(test)]
mod lane_tests {
    use super::*;

    #[test]
    fn lanes_keep_the_order_share_the_threads_and_stop_at_an_error() {
        let items: Vec<usize> = (0..50).collect();
        for (lanes, threads) in [(1, 1), (2, 2), (3, 3), (2, 5), (64, 64)] {
            let squares = in_lanes(&items, lanes, threads, |&i| Ok(i * i)).unwrap();
            assert_eq!(squares, items.iter().map(|i| i * i).collect::<Vec<_>>());
        }
        // Two lanes of two threads: each item on a one-thread pool; five threads in two lanes:
        // pools of three and two.
        let threads = |_: &usize| -> anyhow::Result<usize> { Ok(rayon::current_num_threads()) };
        assert!(
            in_lanes(&items, 2, 2, threads)
                .unwrap()
                .iter()
                .all(|&n| n == 1)
        );
        let seen: std::collections::BTreeSet<usize> = in_lanes(&items, 2, 5, threads)
            .unwrap()
            .into_iter()
            .collect();
        assert!(seen.is_subset(&[2, 3].into()), "{seen:?}");
        let err = in_lanes(&items, 2, 2, |&i| {
            if i == 7 {
                anyhow::bail!("item {i} failed")
            }
            Ok(i)
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "item 7 failed");
        assert!(
            in_lanes(&[] as &[usize], 2, 2, |&i| Ok(i))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_panic_in_a_lane_comes_back_with_its_message() {
        let items: Vec<usize> = (0..20).collect();
        let panic = std::panic::catch_unwind(|| {
            in_lanes(&items, 2, 2, |&i| {
                assert!(i != 5, "batch {i} went wrong");
                Ok(i)
            })
        })
        .unwrap_err();
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert_eq!(message, "batch 5 went wrong");
    }

    #[test]
    fn lanes_need_two_batches_each() {
        assert_eq!(lanes_for(2, 1), 1);
        assert_eq!(lanes_for(2, 3), 1);
        assert_eq!(lanes_for(2, 4), 2);
        assert_eq!(lanes_for(15, 4), 2);
        assert_eq!(lanes_for(32, 1000), MAX_LANES);
        assert_eq!(lanes_for(1, 1000), 1);
    }
}
