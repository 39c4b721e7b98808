//! The `pets` binary: process-wide settings, then the command line (`cli`), then its errors.

mod cli;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps freed memory in the process. By default mimalloc hands freed pages back to the OS
/// after a short delay, and the next op's fresh buffer faults them back in zeroed (often as
/// 2 MiB THP pages): 25-35% of an eval pass and ~7% of a training step was `clear_page_erms`.
/// `MIMALLOC_PURGE_DELAY` in the environment still wins.
fn keep_freed_memory() {
    // mimalloc's C API (linked in through the `mimalloc` crate); 15 is `mi_option_purge_delay`
    // in mimalloc 2 and 3, and -1 means "never purge".
    extern "C" {
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads options atomically.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    }
}

/// candle's own element-wise kernels run on a second thread pool that spins against gemm's
/// rayon threads (ours); on 2 cores that cost 6-10% of a step when idle and ~2x under load.
/// Our fused ops and gemm parallelise through rayon, so candle's pool gets one thread unless
/// `CANDLE_NUM_THREADS` is set.
fn single_threaded_candle_pool() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

fn main() {
    keep_freed_memory();
    single_threaded_candle_pool();
    let args = cli::Cli::parse();
    // The first and only observer of this process: it cannot already be set.
    let _ = pets::progress::set_observer(Box::new(cli::terminal::Terminal::default()));
    if let Err(err) = cli::run(args) {
        cli::hints::print(&err);
        std::process::exit(1);
    }
}
