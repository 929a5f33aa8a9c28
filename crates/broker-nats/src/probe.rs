//! Why TLS to NATS fails, in words: async-nats reports a failed TLS connect only as
//! "IO error", so when a TLS broker has not become healthy soon after start, one handshake is
//! made here with the same rustls configuration (plain TCP, the server's `INFO` line, then TLS
//! with the URL's host, as async-nats does) and its error is logged — an unknown issuer, a
//! name the certificate does not hold, a client certificate the server refused.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rotor_netclient::rustls::{ClientConfig, ClientConnection, Stream};
use rotor_netclient::ServerName;

/// The TLS error of one connection attempt to `host:port`, or `None` when the handshake
/// succeeds (or the server cannot be reached at all, which async-nats reports well enough).
pub(crate) fn tls_failure(
    host: &str,
    port: u16,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Option<String> {
    let addr = (host, port).to_socket_addrs().ok()?.next()?;
    let tcp = TcpStream::connect_timeout(&addr, timeout).ok()?;
    tcp.set_read_timeout(Some(timeout)).ok()?;
    tcp.set_write_timeout(Some(timeout)).ok()?;
    // The server speaks first, in plain text (unless it wants TLS first: then no INFO).
    let mut reader = BufReader::new(tcp);
    let mut info = String::new();
    reader.read_line(&mut info).ok()?;
    if !info.starts_with("INFO") {
        return None;
    }
    let mut tcp = reader.into_inner();
    let name = ServerName::try_from(host.to_owned()).ok()?;
    let mut conn = ClientConnection::new(config, name).ok()?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            return failure(&e);
        }
    }
    // A refused client certificate (TLS 1.3) arrives as an alert after the handshake; a
    // server that accepted us sends nothing before our CONNECT, or an -ERR.
    tcp.set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    let mut byte = [0u8; 1];
    Stream::new(&mut conn, &mut tcp)
        .read_exact(&mut byte)
        .err()
        .and_then(|e| failure(&e))
}

/// An I/O error of the TLS connection, unless it is only a timeout.
fn failure(e: &std::io::Error) -> Option<String> {
    use std::io::ErrorKind::{TimedOut, WouldBlock};
    (!matches!(e.kind(), WouldBlock | TimedOut)).then(|| e.to_string())
}
