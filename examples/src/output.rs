//! Writing to standard output and standard error without panicking when the reader goes away.
//!
//! `println!` and `eprintln!` panic when the write fails, as it does with a broken pipe
//! (`copy … | head -1`: Rust ignores SIGPIPE, so the write returns `EPIPE`). The examples print
//! through [`outln!`](crate::outln) and [`errln!`](crate::errln) instead: once a stream is
//! closed, what is written to it is dropped quietly and the job carries on to its own exit
//! status (a copy is not abandoned half-way because its reader left; `inspect … | head -1`
//! exits 0 when the image is fine). Programs that only print can ask [`stdout_closed`] and stop
//! early. Other write errors (a full disk behind `>`) are reported once on standard error.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);
static STDOUT_FAILED: AtomicBool = AtomicBool::new(false);

/// Whether standard output was closed by its reader (a write met a broken pipe) or failed.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

fn write_line(w: &mut dyn Write, args: fmt::Arguments<'_>) -> io::Result<()> {
    w.write_fmt(args)?;
    w.write_all(b"\n")?;
    w.flush()
}

/// Writes one line to standard output; `false` when it could not (closed or failed).
/// Used through [`outln!`](crate::outln).
pub fn out_line(args: fmt::Arguments<'_>) -> bool {
    if stdout_closed() {
        return false;
    }
    let result = write_line(&mut io::stdout().lock(), args);
    match result {
        Ok(()) => true,
        Err(e) => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            if e.kind() != io::ErrorKind::BrokenPipe && !STDOUT_FAILED.swap(true, Ordering::Relaxed)
            {
                err_line(format_args!("cannot write to standard output: {e}"));
            }
            false
        }
    }
}

/// Writes one line to standard error; dropped once standard error is closed. Used through
/// [`errln!`](crate::errln).
pub fn err_line(args: fmt::Arguments<'_>) {
    if STDERR_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if write_line(&mut io::stderr().lock(), args).is_err() {
        STDERR_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// `println!` that never panics: a closed standard output drops the line (see the module
/// documentation). Evaluates to `false` when the line was not written.
///
/// ```
/// oci_examples::outln!("{} blobs", 3);
/// ```
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::out_line(::std::format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics: a closed standard error drops the line.
///
/// ```
/// oci_examples::errln!("warning: {}", "something");
/// ```
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::err_line(::std::format_args!($($arg)*))
    };
}
