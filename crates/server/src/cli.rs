//! Command line: the root command runs the server (as Centrifugo's does); subcommands check a
//! configuration, print the version or mint a connection token.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{self, Overrides};

#[derive(Parser, Debug)]
#[command(
    name = "rotor",
    version,
    about = "Real-time messaging server, wire-compatible with Centrifugo"
)]
struct Cli {
    /// Configuration file (Centrifugo 2.x JSON, flat keys).
    #[arg(short = 'c', long = "config", global = true)]
    config: Option<PathBuf>,
    /// Address to listen on (empty = all interfaces).
    #[arg(short = 'a', long)]
    address: Option<String>,
    /// Port to listen on.
    #[arg(short = 'p', long)]
    port: Option<u16>,
    /// Engine: memory or redis.
    #[arg(short = 'e', long)]
    engine: Option<String>,
    #[arg(long = "log_level")]
    log_level: Option<String>,
    /// Node name shown by `info`.
    #[arg(short = 'n', long)]
    name: Option<String>,
    #[arg(long = "api_insecure")]
    api_insecure: bool,
    #[arg(long = "client_insecure")]
    client_insecure: bool,
    #[arg(long)]
    health: bool,
    #[arg(long)]
    prometheus: bool,
    #[arg(long)]
    admin: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the version.
    Version,
    /// Check a configuration file and exit.
    Checkconfig,
    /// Print an HS256 connection token for a user, signed with the configured secret.
    Gentoken {
        #[arg(short = 'u', long, default_value = "")]
        user: String,
        /// Lifetime in seconds (0 = no expiry).
        #[arg(short = 't', long, default_value_t = 604800)]
        ttl: i64,
    },
}

impl Cli {
    fn overrides(&self) -> Overrides {
        Overrides {
            address: self.address.clone(),
            port: self.port,
            api_insecure: self.api_insecure.then_some(true),
            client_insecure: self.client_insecure.then_some(true),
            log_level: self.log_level.clone(),
            engine: self.engine.clone(),
            health: self.health.then_some(true),
            prometheus: self.prometheus.then_some(true),
            admin: self.admin.then_some(true),
            name: self.name.clone(),
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let load = || config::load(cli.config.as_deref(), &env, &cli.overrides());
    match &cli.command {
        Some(Command::Version) => {
            println!("rotor {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(Command::Checkconfig) => {
            let cfg = load()?;
            for w in &cfg.warnings {
                println!("warning: {w}");
            }
            println!("configuration is valid");
            Ok(())
        }
        Some(Command::Gentoken { user, ttl }) => {
            let cfg = load()?;
            anyhow::ensure!(
                !cfg.node.token_hmac_secret_key.is_empty(),
                "token_hmac_secret_key is not set"
            );
            let mut claims = serde_json::json!({ "sub": user });
            if *ttl > 0 {
                claims["exp"] = serde_json::json!(rotor_core::node::unix_now() + ttl);
            }
            let token =
                rotor_core::auth::sign_hs256(&cfg.node.token_hmac_secret_key, &claims.to_string());
            println!("{token}");
            Ok(())
        }
        None => {
            let cfg = load()?;
            init_logging(&cfg.server.log_level);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            rt.block_on(crate::app::serve(cfg))
        }
    }
}

fn init_logging(level: &str) {
    let directive = match level {
        "none" => "off",
        "fatal" => "error",
        l => l,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directive));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
