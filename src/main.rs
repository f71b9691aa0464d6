//! The `nerlab` binary: argument parsing only; everything else lives in the library.

fn main() -> std::process::ExitCode {
    pin_candle_thread_count();
    match nerlab::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// candle asks for its thread count before every matrix product and many other ops; with
/// `RAYON_NUM_THREADS` unset it answers by reading and parsing `/proc/cpuinfo` each time
/// (`num_cpus::get_physical`): 4-6% of tagging time on this 2-core machine, and more the more
/// cores a machine lists. Setting the variable to the count candle would compute, once, before
/// any thread exists, turns each of those reads into an environment lookup and changes nothing
/// else. A count the user set is left alone.
#[allow(unsafe_code)]
fn pin_candle_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = candle_core::utils::get_num_threads();
        // SAFETY: the first statement of `main`: no other thread exists yet that could read or
        // write the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
}
