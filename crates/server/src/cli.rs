//! Command line, as Centrifugo's: the root command runs the server; subcommands write, check
//! and print a configuration, mint and check tokens, and print the version.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::config::{self, formats, LoadedConfig, Overrides};

mod sign;

/// Where a configuration is looked for when `-c` is not given (when it exists).
const DEFAULT_CONFIG: &str = "config.json";
/// Default token lifetime of `gentoken` / `gensubtoken`: one week, as Centrifugo.
const DEFAULT_TTL: &str = "604800";

#[derive(Parser, Debug)]
#[command(
    name = "rotor",
    version,
    about = "Real-time messaging server, wire-compatible with Centrifugo",
    long_about = "Real-time messaging server, wire-compatible with Centrifugo.\n\n\
        Without a subcommand it runs the server. Configuration comes from a file (-c; \
        config.json in the current folder when it exists), from CENTRIFUGO_* / ROTOR_* \
        environment variables and from flags, in that order of precedence (flags win). \
        Without any configuration it starts with a token secret and an API key generated \
        for the run, and prints them with a ready token and a curl publish example."
)]
struct Cli {
    /// Configuration file: JSON, YAML (.yaml/.yml) or TOML (.toml), with Centrifugo 2.x flat
    /// keys or Centrifugo 6 nested keys [default: config.json when it exists]
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (empty = all interfaces)
    #[arg(short = 'a', long, alias = "http_server.address")]
    address: Option<String>,
    /// Port to listen on
    #[arg(short = 'p', long, alias = "http_server.port")]
    port: Option<u16>,
    /// Address of the internal listener (API, metrics, health, admin)
    #[arg(long = "internal_address", alias = "http_server.internal_address")]
    internal_address: Option<String>,
    /// Port of the internal listener (API, metrics, health, admin)
    #[arg(long = "internal_port", alias = "http_server.internal_port")]
    internal_port: Option<u16>,
    /// Engine: memory or redis
    #[arg(short = 'e', long, alias = "engine.type")]
    engine: Option<String>,
    /// Broker beside the engine (Centrifugo 2.x): nats
    #[arg(long)]
    broker: Option<String>,
    /// NATS server URL for `--broker nats` (default nats://127.0.0.1:4222)
    #[arg(long = "nats_url", alias = "broker.nats.url")]
    nats_url: Option<String>,
    /// Log level: trace, debug, info, warn, error, fatal or none
    #[arg(long = "log_level", alias = "log.level")]
    log_level: Option<String>,
    /// Node name shown by `info`
    #[arg(short = 'n', long, alias = "node.name")]
    name: Option<String>,
    /// Accept server API requests without an API key
    #[arg(long = "api_insecure", alias = "http_api.insecure")]
    api_insecure: bool,
    /// Accept client connections without a token (development only)
    #[arg(long = "client_insecure", alias = "client.insecure")]
    client_insecure: bool,
    /// Serve /health
    #[arg(long, alias = "health.enabled")]
    health: bool,
    /// Serve /metrics
    #[arg(long, alias = "prometheus.enabled")]
    prometheus: bool,
    /// Serve the admin web UI
    #[arg(long, alias = "admin.enabled")]
    admin: bool,
    /// Start the gRPC server API
    #[arg(long = "grpc_api", alias = "grpc_api.enabled")]
    grpc_api: bool,
    /// Port of the gRPC server API (default 10000)
    #[arg(long = "grpc_api_port", alias = "grpc_api.port")]
    grpc_api_port: Option<u16>,
    /// TLS on the gRPC server API with its own certificate
    #[arg(long = "grpc_api_tls")]
    grpc_api_tls: bool,
    /// Certificate (PEM file) of the gRPC server API
    #[arg(long = "grpc_api_tls_cert", value_name = "FILE")]
    grpc_api_tls_cert: Option<String>,
    /// Private key (PEM file) of the gRPC server API
    #[arg(long = "grpc_api_tls_key", value_name = "FILE")]
    grpc_api_tls_key: Option<String>,
    /// Do not inherit the HTTP TLS settings on the gRPC server API
    #[arg(long = "grpc_api_tls_disable")]
    grpc_api_tls_disable: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// `genconfig --format`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum GenFormat {
    Json,
    Yaml,
    Toml,
}

impl GenFormat {
    fn format(self) -> formats::Format {
        match self {
            GenFormat::Json => formats::Format::Json,
            GenFormat::Yaml => formats::Format::Yaml,
            GenFormat::Toml => formats::Format::Toml,
        }
    }

    fn default_file(self) -> &'static str {
        match self {
            GenFormat::Json => "config.json",
            GenFormat::Yaml => "config.yaml",
            GenFormat::Toml => "config.toml",
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the version
    Version,
    /// Check a configuration and print the effective settings (secrets masked)
    Checkconfig,
    /// Write a new configuration with fresh random secrets (config.json unless -c names
    /// another file; .json, .yaml, .yml or .toml); never overwrites a file. Without --format:
    /// Centrifugo 2.x flat keys in the format the file name gives; with --format: Centrifugo 6
    /// nested keys (config.<format> unless -c names another file)
    Genconfig {
        /// Write the Centrifugo 6 nested form in this format
        #[arg(long, value_enum)]
        format: Option<GenFormat>,
    },
    /// Print a connection token for a user: HS256 with the configured secret, or signed with
    /// a private key file (--private-key)
    Gentoken {
        /// User ID (`sub` claim); empty for an anonymous connection
        #[arg(short = 'u', long, default_value = "")]
        user: String,
        /// Lifetime: seconds or a duration like 1h (0 = no expiry)
        #[arg(short = 't', long, default_value = DEFAULT_TTL, value_parser = ttl)]
        ttl: i64,
        #[command(flatten)]
        key: SignOpts,
    },
    /// Print a subscription token for a user and a channel: HS256 with the configured secret
    /// (the subscription-token block's when enabled), or signed with --private-key
    Gensubtoken {
        /// User ID (`sub` claim): the user of the connection that subscribes
        #[arg(short = 'u', long, default_value = "")]
        user: String,
        /// Channel (`channel` claim)
        #[arg(short = 's', long)]
        channel: String,
        /// Client ID (`client` claim): required by protocol v1 (centrifuge-js 2.x) clients
        #[arg(long)]
        client: Option<String>,
        /// Lifetime: seconds or a duration like 1h (0 = no expiry)
        #[arg(short = 't', long, default_value = DEFAULT_TTL, value_parser = ttl)]
        ttl: i64,
        #[command(flatten)]
        key: SignOpts,
    },
    /// Check a connection token with the configured keys (HMAC, RSA, ECDSA or JWKS)
    Checktoken {
        /// The token (JWT)
        token: String,
    },
    /// Check a subscription token with the configured keys (the subscription-token block's
    /// when enabled)
    Checksubtoken {
        /// The token (JWT)
        token: String,
    },
}

/// How `gentoken` / `gensubtoken` sign when not with the HMAC secret.
#[derive(clap::Args, Debug, Default)]
struct SignOpts {
    /// Sign with this private key (PEM: PKCS#8 "PRIVATE KEY" of RSA, P-256, P-384, P-521 or
    /// Ed25519, or PKCS#1 "RSA PRIVATE KEY") instead of the HMAC secret; the algorithm
    /// follows from the key (RS256, ES256, ES384, ES512, EdDSA)
    #[arg(long = "private-key", value_name = "FILE")]
    private_key: Option<PathBuf>,
    /// Algorithm: RS384 / RS512 for an RSA key; HS384 / HS512 with the HMAC secret
    #[arg(long, value_name = "ALG")]
    alg: Option<String>,
    /// `kid` header (the key's ID in a JWKS)
    #[arg(long, value_name = "KID")]
    kid: Option<String>,
    /// `iss` claim [default: the configured exact issuer, if any]
    #[arg(long, value_name = "ISS")]
    iss: Option<String>,
    /// `aud` claim [default: the configured exact audience, if any]
    #[arg(long, value_name = "AUD")]
    aud: Option<String>,
}

/// Signs `claims` as `opts` say, with `secret` for HMAC. Returns the token and its `alg`.
fn mint(opts: &SignOpts, secret: Option<&str>, claims: &str) -> anyhow::Result<(String, String)> {
    if let Some(path) = &opts.private_key {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --private-key {}", path.display()))?;
        let key = sign::PrivateKey::from_pem(&text)
            .map_err(|e| anyhow::anyhow!("--private-key {}: {e}", path.display()))?;
        let (token, alg) = key
            .sign(opts.alg.as_deref(), opts.kid.as_deref(), claims)
            .map_err(anyhow::Error::msg)?;
        return Ok((token, alg.to_string()));
    }
    let Some(secret) = secret else {
        bail!(
            "token_hmac_secret_key is not set (in the config file, or \
             CENTRIFUGO_TOKEN_HMAC_SECRET_KEY / CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY); \
             or sign with --private-key FILE"
        );
    };
    let alg = opts.alg.as_deref().unwrap_or("HS256");
    if opts.kid.is_some() {
        bail!("--kid needs --private-key (HMAC tokens are verified with the configured secret)");
    }
    let token = rotor_core::auth::sign_hmac(alg, secret, claims).ok_or_else(|| {
        anyhow::anyhow!("--alg {alg} needs --private-key (with the secret: HS256, HS384, HS512)")
    })?;
    Ok((token, alg.to_string()))
}

/// A token lifetime in seconds: an integer, or a Go-style duration (`1h`, `30m`).
fn ttl(s: &str) -> Result<i64, String> {
    if let Ok(n) = s.trim().parse::<i64>() {
        return if n >= 0 {
            Ok(n)
        } else {
            Err("must not be negative".into())
        };
    }
    let d = config::parse_duration(s)?;
    i64::try_from(d.as_secs()).map_err(|_| "too large".to_string())
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
            internal_address: self.internal_address.clone(),
            internal_port: self.internal_port,
            grpc_api: self.grpc_api.then_some(true),
            grpc_api_port: self.grpc_api_port,
            grpc_api_tls: self.grpc_api_tls.then_some(true),
            grpc_api_tls_cert: self.grpc_api_tls_cert.clone(),
            grpc_api_tls_key: self.grpc_api_tls_key.clone(),
            grpc_api_tls_disable: self.grpc_api_tls_disable.then_some(true),
            broker: self.broker.clone(),
            nats_url: self.nats_url.clone(),
        }
    }

    /// `-c`, else `config.json` in the current folder when it exists, else no file.
    fn config_path(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            let p = PathBuf::from(DEFAULT_CONFIG);
            p.is_file().then_some(p)
        })
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the parsers put in their messages.
            let msg = format!("{e:#}");
            let msg: Vec<&str> = msg.split_whitespace().collect();
            eprintln!("error: {}", msg.join(" "));
            ExitCode::FAILURE
        }
    }
}

fn print_warnings(cfg: &LoadedConfig) {
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
}

/// Minted tokens carry `--aud` / `--iss`, else the configured exact audience / issuer (of the
/// subscription-token block for `gensubtoken` when it is enabled), so the server that reads
/// the same config accepts them.
fn add_aud_iss(claims: &mut serde_json::Value, cfg: &LoadedConfig, opts: &SignOpts, sub: bool) {
    let n = &cfg.node;
    let (aud, iss) = match (&n.subscription_token, sub) {
        (Some(b), true) => (&b.audience, &b.issuer),
        _ => (&n.token_audience, &n.token_issuer),
    };
    if let Some(aud) = opts.aud.as_ref().or((!aud.is_empty()).then_some(aud)) {
        claims["aud"] = json!(aud);
    }
    if let Some(iss) = opts.iss.as_ref().or((!iss.is_empty()).then_some(iss)) {
        claims["iss"] = json!(iss);
    }
}

/// The verifier the server builds from the same config (JWKS key sets included):
/// `checktoken` and `checksubtoken` then agree with it on keys, audience, issuer, regexes and
/// user claim.
fn verifier_of(cfg: &LoadedConfig) -> anyhow::Result<rotor_core::auth::TokenVerifier> {
    config::token_verifier(&cfg.node).map_err(anyhow::Error::msg)
}

/// The HMAC secret `gentoken` (`sub = false`) or `gensubtoken` signs with, if any.
fn secret_of(cfg: &LoadedConfig, sub: bool) -> Option<&str> {
    let secret = match (&cfg.node.subscription_token, sub) {
        (Some(block), true) => block.hmac_secret_key.as_str(),
        _ => cfg.node.token_hmac_secret_key.as_str(),
    };
    (!secret.is_empty()).then_some(secret)
}

/// Runs `fut` (a verification that may fetch JWKS keys) to completion.
fn block_on<T>(fut: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    Ok(rt.block_on(fut))
}

/// `exp` for a lifetime of `ttl` seconds from now (none for 0).
fn expiry(ttl: i64) -> Option<i64> {
    (ttl > 0).then(|| rotor_core::node::unix_now() + ttl)
}

fn describe_expiry(exp: Option<i64>) -> String {
    let now = rotor_core::node::unix_now();
    match exp {
        None => "no expiry".into(),
        Some(e) if e <= now => format!("expired at unix time {e}"),
        Some(e) => {
            let left = std::time::Duration::from_secs((e - now) as u64);
            format!(
                "expires at unix time {e} (in {})",
                config::format_duration(left)
            )
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let path = cli.config_path();
    let load = || config::load(path.as_deref(), &env, &cli.overrides());
    match &cli.command {
        Some(Command::Version) => {
            println!("{}", crate::build_info::line());
            Ok(())
        }
        Some(Command::Checkconfig) => {
            let cfg = load()?;
            print_warnings(&cfg);
            check_proxies(&cfg)?;
            crate::engine::check(&cfg)?;
            let text = serde_json::to_string_pretty(&config::effective(&cfg))?;
            println!("{text}");
            match &cfg.source {
                Some(p) => eprintln!("configuration {} is valid", p.display()),
                None => eprintln!("configuration is valid (no file: defaults and environment)"),
            }
            Ok(())
        }
        Some(Command::Genconfig { format }) => {
            let default = format.map_or(DEFAULT_CONFIG, |f| f.default_file());
            let target = cli.config.clone().unwrap_or(PathBuf::from(default));
            genconfig(&target, *format)
        }
        Some(Command::Gentoken { user, ttl, key }) => {
            let cfg = load()?;
            print_warnings(&cfg);
            let exp = expiry(*ttl);
            let mut claims = json!({ "sub": user });
            if let Some(exp) = exp {
                claims["exp"] = json!(exp);
            }
            add_aud_iss(&mut claims, &cfg, key, false);
            let (token, alg) = mint(key, secret_of(&cfg, false), &claims.to_string())?;
            eprintln!(
                "{alg} connection token for user {user:?}, {}:",
                describe_expiry(exp)
            );
            println!("{token}");
            Ok(())
        }
        Some(Command::Gensubtoken {
            user,
            channel,
            client,
            ttl,
            key,
        }) => {
            let cfg = load()?;
            print_warnings(&cfg);
            let exp = expiry(*ttl);
            let mut claims = json!({ "sub": user, "channel": channel });
            add_aud_iss(&mut claims, &cfg, key, true);
            if let Some(client) = client {
                claims["client"] = json!(client);
            }
            if let Some(exp) = exp {
                claims["exp"] = json!(exp);
            }
            let (token, alg) = mint(key, secret_of(&cfg, true), &claims.to_string())?;
            eprintln!(
                "{alg} subscription token for user {user:?} and channel {channel:?}, {}:",
                describe_expiry(exp)
            );
            println!("{token}");
            Ok(())
        }
        Some(Command::Checktoken { token }) => {
            let cfg = load()?;
            print_warnings(&cfg);
            let verifier = verifier_of(&cfg)?;
            let now = rotor_core::node::unix_now();
            let claims = block_on(verifier.verify_connect_async(token, now, true))?
                .map_err(|e| anyhow::anyhow!("token is not valid: {e}"))?;
            println!(
                "valid connection token for user {:?}, {}",
                claims.user,
                describe_expiry(claims.exp)
            );
            Ok(())
        }
        Some(Command::Checksubtoken { token }) => {
            let cfg = load()?;
            print_warnings(&cfg);
            let verifier = verifier_of(&cfg)?;
            let now = rotor_core::node::unix_now();
            let claims = block_on(verifier.verify_subscribe_async(token, now))?
                .map_err(|e| anyhow::anyhow!("token is not valid: {e}"))?;
            println!(
                "valid subscription token for user {:?} and channel {:?}{}, {}",
                claims.user.unwrap_or_default(),
                claims.channel,
                claims
                    .client
                    .map(|c| format!(" (client {c:?})"))
                    .unwrap_or_default(),
                describe_expiry(claims.token_exp)
            );
            Ok(())
        }
        None => {
            let mut cfg = load()?;
            config::prepare_first_run(&mut cfg);
            init_logging(&cfg.server.log_level, &cfg.server.log_format);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            rt.block_on(crate::app::serve(cfg))
        }
    }
}

/// Builds the proxies to the backend as the server would (endpoints, TLS files), without
/// calling them: `checkconfig` then refuses what the server would refuse at start.
fn check_proxies(cfg: &LoadedConfig) -> anyhow::Result<()> {
    if cfg.proxy.is_empty() {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let built = rt.block_on(async { rotor_proxy::ProxyBackend::new(&cfg.proxy).map(drop) });
    built.map_err(|e| anyhow::anyhow!("cannot set up the proxies to the backend: {e}"))
}

/// Writes a working configuration with fresh random secrets to `target`, in the format its
/// extension names; refuses to overwrite anything.
fn genconfig(target: &Path, nested: Option<GenFormat>) -> anyhow::Result<()> {
    let Some(format) = formats::Format::for_writing(target) else {
        bail!(
            "cannot write {}: the file name must end in .json, .yaml, .yml or .toml",
            target.display()
        );
    };
    if let Some(f) = nested.filter(|f| f.format() != format) {
        bail!(
            "cannot write {}: --format {} needs a file name ending in {}",
            target.display(),
            f.format().name().to_ascii_lowercase(),
            match f {
                GenFormat::Json => ".json",
                GenFormat::Yaml => ".yaml or .yml",
                GenFormat::Toml => ".toml",
            }
        );
    }
    let secret = config::random_secret;
    let value = if nested.is_some() {
        json!({
            "client": { "token": { "hmac_secret_key": secret() } },
            "http_api": { "key": secret() },
            "admin": { "password": secret(), "secret": secret() },
        })
    } else {
        json!({
            "token_hmac_secret_key": secret(),
            "api_key": secret(),
            "admin_password": secret(),
            "admin_secret": secret(),
        })
    };
    let text = formats::render(format, &value).map_err(|e| anyhow::anyhow!(e))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                "{} already exists; not overwriting it (name another file with -c)",
                target.display()
            ),
            _ => anyhow::anyhow!("cannot create {}: {e}", target.display()),
        })?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("writing {}", target.display()))?;
    let keys = if nested.is_some() {
        "Centrifugo 6 keys, with a fresh client.token.hmac_secret_key, http_api.key, \
         admin.password and admin.secret"
    } else {
        "with a fresh token_hmac_secret_key, api_key, admin_password and admin_secret"
    };
    println!("wrote {} ({} {keys})", target.display(), format.name());
    Ok(())
}

/// Logs to stderr at `level`; `format` `json` writes one JSON object per line (timestamp,
/// level, target, message and fields), for log shippers.
fn init_logging(level: &str, format: &str) {
    let directive = match level {
        "none" => "off",
        "fatal" => "error",
        l => l,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directive));
    // Colour codes only on a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if format == "json" {
        fmt.json().flatten_event(true).init();
    } else {
        fmt.init();
    }
}
