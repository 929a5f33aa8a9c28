//! The `rotor` server as a library: the module tree the binary (`src/main.rs`) runs through
//! [`main`]. A library so the fuzz targets (`fuzz/`, see FUZZING.md) can reach the server's own
//! parsers through [`fuzz`]; nothing else is public.

mod admin;
mod api;
mod app;
mod build_info;
mod cli;
mod config;
mod engine;
#[doc(hidden)]
pub mod fuzz;
mod http;
mod limits;
mod metrics;
mod shutdown;
mod tls;
mod transport;

/// The `rotor` command line: parses the arguments and runs the chosen subcommand.
pub fn main() -> std::process::ExitCode {
    cli::main()
}
