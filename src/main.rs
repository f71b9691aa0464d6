//! The `nerlab` binary: argument parsing only; everything else lives in the library.

fn main() -> std::process::ExitCode {
    match nerlab::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
