//! What a tool prints on standard output. A reader that went away (`| head`) ends the
//! program quietly with status 0, as it would a shell tool, instead of the panic of
//! `println!`: Rust ignores SIGPIPE, and the tools cannot take it back, for their milter
//! sockets would then kill them on a peer that went away.

use std::io::{self, Write};

/// Writes `text` and flushes it.
pub fn print(text: std::fmt::Arguments<'_>) {
    let mut stdout = io::stdout().lock();
    match stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("cannot write to standard output: {e}");
            std::process::exit(1)
        }
    }
}

/// `println!` through [`print`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::program::stdout::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::program::stdout::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through [`print`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::program::stdout::print(format_args!($($arg)*))
    };
}
