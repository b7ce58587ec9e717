//! `jumpd`: the jump enforcement daemon.
use clap::Parser;
use jump_userspace::{
    daemon::{self, args::Args, config},
    events::sink::{self, LogFormat},
};

/// mimalloc instead of glibc's malloc: parsing and compiling a large policy allocates and frees
/// millions of small nodes, and glibc spent half of a 100,000-rule reload in `malloc`/`free`
/// (consolidating and unlinking chunks of its fragmented heap).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let opts = match config::resolve(&args.flags) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("jumpd: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let (format, warning) = match opts.log_format {
        Some(f) => (f, None),
        None => LogFormat::detect_at(std::path::Path::new(sink::JOURNALD_SOCKET)),
    };
    if let Err(e) = sink::init(format) {
        eprintln!("jumpd: cannot start logging to {}: {e:#}", format.name());
        return std::process::ExitCode::from(2);
    }
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    if args.detach {
        return match daemon::detach_standalone(&opts) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("jumpd: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    tracing::info!(
        message_id = daemon::message_id::STARTING,
        "jumpd {} starting, logging to {}{}",
        env!("CARGO_PKG_VERSION"),
        format.name(),
        opts.config
            .as_ref()
            .map(|c| format!(", config `{}`", c.display()))
            .unwrap_or_default()
    );
    // INVARIANT (single thread at drop): one thread, so the capability drop covers the process.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("jumpd: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon::run(opts)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("jumpd: {e:#}");
            eprintln!("jumpd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
