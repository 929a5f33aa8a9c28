//! `rotor`: the server binary. Reads a Centrifugo-style configuration, starts the node and
//! serves WebSocket clients and the HTTP server API until SIGINT/SIGTERM.

mod admin;
mod api;
mod app;
mod build_info;
mod cli;
mod config;
mod engine;
mod http;
mod limits;
mod metrics;
mod shutdown;
mod tls;
mod transport;

fn main() -> std::process::ExitCode {
    cli::main()
}
