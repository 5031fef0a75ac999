//! Migration from the original milter manager: its Ruby `milter-manager.conf` (and what
//! that loads) read into statements, and converted to this project's TOML and Rhai. No
//! I/O here: the program reads the files and writes the result.

pub mod ast;
pub mod error;
pub mod lexer;
pub mod parser;

pub use error::{Location, MigrateError};
