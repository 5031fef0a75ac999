//! Migration from the original milter manager: its Ruby `milter-manager.conf` (and what
//! that loads) read into statements, and converted to this project's TOML and Rhai. No
//! I/O here: the program reads the files (through [`Source`]) and writes the result.

pub mod ast;
pub mod convert;
pub mod error;
pub mod items;
pub mod lexer;
pub mod output;
pub mod parser;
pub mod regexp;
pub mod stopper;

pub use convert::{Finding, Source};
pub use error::{Location, MigrateError};

/// The converted configuration: files to write and what needs a hand.
#[derive(Debug)]
pub struct Conversion {
    /// `(file name in the output directory, text)`.
    pub files: Vec<(String, String)>,
    /// Everything translated approximately or not at all, in the original's order.
    pub findings: Vec<Finding>,
}

/// Converts the original's configuration directory `dir`.
pub fn convert(dir: &str, source: &dyn Source) -> Result<Conversion, MigrateError> {
    let collected = convert::collect(dir, source)?;
    Ok(Conversion { files: output::render(dir, &collected), findings: collected.findings })
}
