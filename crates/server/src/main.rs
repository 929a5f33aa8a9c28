//! `rotor`: the server binary. Reads a Centrifugo-style configuration, starts the node and
//! serves WebSocket clients and the HTTP server API until SIGINT/SIGTERM. The module tree is
//! the `rotor_server` library (src/lib.rs).

fn main() -> std::process::ExitCode {
    rotor_server::main()
}
