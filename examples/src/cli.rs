//! The examples' command lines, through `clap` (derive).
//!
//! Here are the option groups several examples share, flattened into each (so an option is
//! spelled, checked and explained the same way everywhere), the value parsers that turn a
//! location, a platform, a count or credentials into a value (one each: every example accepts
//! and refuses the same text), and [`parse`], which prints clap's help and errors the way the
//! examples print everything else: what the user typed is shown with its control characters
//! escaped, and a password never.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::{RangedU64ValueParser, StyledStr};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, Parser, ValueEnum};
use oci_digest::{Digest, ParseDigestError};
use oci_manifest::convert::Flavor;
use oci_manifest::{ManifestError, Platform};
use oci_store::{CopyOptions, VerifyMode};

use crate::size::Size;
use crate::transport::Endpoint;
use crate::{errln, escape, outln};

/// Options whose values are secrets: a rejected value of one of them is never shown.
const SECRET_OPTIONS: &[&str] = &["--creds"];

/// The environment variable `--creds` is read from when the option is not given.
pub const CREDS_ENV: &str = "OCI_RS_CREDS";

/// The most transfers (or images) a count option allows at once: each holds open files and a
/// connection, and the usual limit on a process's open files is 1024.
pub const MAX_AT_ONCE: u64 = 256;

/// A command line that was not run: what to print, where, and the exit status (0 for `--help`,
/// 2 for a usage error).
#[derive(Debug)]
pub struct Rejected {
    /// The help or the error, ready to print: control characters escaped, secrets hidden.
    pub text: String,
    /// Whether it goes to standard output (help) rather than standard error (errors).
    pub to_stdout: bool,
    /// The exit status.
    pub code: u8,
}

impl Rejected {
    /// Prints the text where it belongs and gives the exit status.
    ///
    /// ```
    /// let r = oci_examples::cli::Rejected { text: "usage".into(), to_stdout: false, code: 2 };
    /// assert_eq!(r.print(), std::process::ExitCode::from(2));
    /// ```
    pub fn print(&self) -> ExitCode {
        if self.to_stdout {
            outln!("{}", self.text);
        } else {
            errln!("{}", self.text);
        }
        ExitCode::from(self.code)
    }
}

/// The text of a clap error made safe to print: every piece of context that came from the
/// command line escaped ([`escape`]), the rejected value of a [`SECRET_OPTIONS`] option
/// replaced, then each line escaped again (clap's own layout holds no control character but
/// its line breaks, so this only catches what the first pass could not name).
fn rejected(mut e: clap::Error) -> Rejected {
    let secret = matches!(
        e.get(ContextKind::InvalidArg),
        Some(ContextValue::String(arg)) if SECRET_OPTIONS.iter().any(|s| arg.starts_with(s))
    );
    let context: Vec<(ContextKind, ContextValue)> =
        e.context().map(|(k, v)| (k, v.clone())).collect();
    for (kind, value) in context {
        let safe = match value {
            ContextValue::String(_) if secret && kind == ContextKind::InvalidValue => {
                ContextValue::String("(hidden)".to_owned())
            }
            ContextValue::String(s) => ContextValue::String(escape(&s).into_owned()),
            ContextValue::Strings(v) => {
                ContextValue::Strings(v.iter().map(|s| escape(s).into_owned()).collect())
            }
            // Tips ("to pass '--x' as a value, use '-- --x'") repeat the input too. Plain text
            // in, plain text out: the examples print without colour.
            ContextValue::StyledStr(s) => ContextValue::StyledStr(plain(&s)),
            ContextValue::StyledStrs(v) => ContextValue::StyledStrs(v.iter().map(plain).collect()),
            _ => continue,
        };
        e.insert(kind, safe);
    }
    let rendered = e.render().to_string();
    let text = rendered
        .trim_end()
        .lines()
        .map(|l| escape(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    Rejected {
        text,
        to_stdout: !e.use_stderr(),
        code: u8::try_from(e.exit_code()).unwrap_or(2),
    }
}

/// `s` as plain text with its control characters escaped.
fn plain(s: &StyledStr) -> StyledStr {
    StyledStr::from(escape(&s.to_string()).into_owned())
}

/// Parses `args` (the program name first) as `T`'s command line; `Err` with what to print for
/// `--help` and for a command line that is wrong.
///
/// ```
/// use clap::Parser;
/// #[derive(Parser, Debug)]
/// #[command(name = "demo", bin_name = "demo")]
/// struct Cli {
///     #[command(flatten)]
///     registry: oci_examples::cli::RegistryArgs,
/// }
/// let cli: Cli = oci_examples::cli::try_parse_from(["demo", "--plain-http"]).unwrap();
/// assert!(cli.registry.plain_http);
/// let e = oci_examples::cli::try_parse_from::<Cli, _, _>(["demo", "--bad\u{1b}[2J"]).unwrap_err();
/// assert_eq!(e.code, 2);
/// assert!(e.text.contains("--bad\\u{1b}[2J"), "{}", e.text);
/// let e = oci_examples::cli::try_parse_from::<Cli, _, _>(["demo", "--creds", "alice-s3cret"]).unwrap_err();
/// assert!(!e.text.contains("s3cret"), "{}", e.text);
/// let help = oci_examples::cli::try_parse_from::<Cli, _, _>(["demo", "--help"]).unwrap_err();
/// assert!(help.to_stdout && help.code == 0);
/// ```
///
/// # Errors
/// [`Rejected`]: the help, or the error with the usage.
pub fn try_parse_from<T, I, A>(args: I) -> Result<T, Rejected>
where
    T: Parser,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    T::try_parse_from(args).map_err(rejected)
}

/// Parses the process's command line as `T`'s, as clap's `Parser::parse` does: on `--help`
/// or a wrong command line it prints what [`try_parse_from`] gives and ends the process with
/// its exit status (0 after `--help`, 2 after a usage error). Call it first thing in `main`,
/// before anything that must be cleaned up.
///
/// ```no_run
/// use clap::Parser;
/// #[derive(Parser)]
/// struct Cli {
///     #[arg(long)]
///     dry_run: bool,
/// }
/// let cli: Cli = oci_examples::cli::parse();
/// if cli.dry_run {
///     println!("changing nothing");
/// }
/// ```
pub fn parse<T: Parser>() -> T {
    match try_parse_from(std::env::args_os()) {
        Ok(t) => t,
        Err(r) => {
            r.print();
            std::process::exit(i32::from(r.code))
        }
    }
}

/// Reports a usage error found after parsing (a rule clap cannot state, such as "`--verify`
/// checks one FILE") as clap reports its own, usage included; returns exit status 2.
///
/// ```
/// use clap::Parser;
/// #[derive(Parser)]
/// #[command(name = "demo", bin_name = "demo")]
/// struct Cli {}
/// let code = oci_examples::cli::usage_error::<Cli>("two files given, one expected");
/// assert_eq!(code, std::process::ExitCode::from(2));
/// ```
pub fn usage_error<T: CommandFactory>(message: impl fmt::Display) -> ExitCode {
    rejected(T::command().error(ErrorKind::ArgumentConflict, message)).print()
}

/// The value parser of every image location: `oci:PATH[:TAG|@DIGEST]`,
/// `docker://REGISTRY/REPO[:TAG|@DIGEST]`, `s3://BUCKET/PREFIX[:TAG|@DIGEST]`,
/// `docker-archive:PATH[:REFERENCE]` or `oci-archive:PATH[:TAG]` ([`Endpoint::parse`]).
///
/// ```
/// use oci_examples::cli::endpoint;
/// assert!(endpoint("oci:./store:v1").is_ok());
/// assert!(endpoint("docker://127.0.0.1:5000/team/app:v1").is_ok());
/// assert!(endpoint("s3://cache/images:app").is_ok());
/// assert!(endpoint("docker-archive:/tmp/x.tar:app:v1").is_ok());
/// assert!(endpoint("ftp://x").unwrap_err().contains("expected oci:PATH"));
/// ```
///
/// # Errors
/// What is wrong with it (the input itself is shown by clap).
pub fn endpoint(s: &str) -> Result<Endpoint, String> {
    Endpoint::parse(s).map_err(|e| escape(&e.reason).into_owned())
}

/// A whole managed store, `oci:PATH` or `s3://BUCKET/PREFIX` without a tag or digest (`gc`,
/// `fsck`), through [`endpoint`]. An archive is refused: it is not a managed store.
///
/// ```
/// use oci_examples::cli::whole_store;
/// use oci_examples::transport::Endpoint;
/// assert_eq!(whole_store("oci:./store").unwrap(), Endpoint::Layout { path: "./store".into(), reference: None });
/// assert!(whole_store("s3://cache/images").is_ok());
/// assert!(whole_store("oci:./store:v1").is_err());
/// assert!(whole_store("s3://cache/images:v1").is_err());
/// assert!(whole_store("docker://r.example/a").is_err());
/// assert!(whole_store("docker-archive:x.tar").unwrap_err().contains("not a managed store"));
/// assert!(whole_store("./store").is_err());
/// ```
///
/// # Errors
/// What is wrong with it.
pub fn whole_store(s: &str) -> Result<Endpoint, String> {
    const EXPECTED: &str =
        "expected oci:PATH of a whole layout or s3://BUCKET/PREFIX, without a tag or digest";
    if !(s.starts_with("oci:")
        || s.starts_with("s3://")
        || s.starts_with("docker-archive:")
        || s.starts_with("oci-archive:"))
    {
        return Err(EXPECTED.to_owned());
    }
    match endpoint(s)? {
        e @ (Endpoint::Layout {
            reference: None, ..
        }
        | Endpoint::Bucket {
            reference: None, ..
        }) => Ok(e),
        Endpoint::Archive { kind, .. } => Err(format!(
            "{kind} is an archive, not a managed store (nothing to collect or repair in it): {EXPECTED}"
        )),
        _ => Err(EXPECTED.to_owned()),
    }
}

/// An image in a store that is not a registry (`inspect`): `oci:PATH[:TAG|@DIGEST]`,
/// `s3://BUCKET/PREFIX[:TAG|@DIGEST]`, `docker-archive:PATH[:REFERENCE]`,
/// `oci-archive:PATH[:TAG]`, through [`endpoint`].
///
/// ```
/// use oci_examples::cli::stored_image;
/// assert!(stored_image("oci:./store:v1").is_ok());
/// assert!(stored_image("oci:./store").is_ok());
/// assert!(stored_image("s3://cache/images:v1").is_ok());
/// assert!(stored_image("oci-archive:x.tar").is_ok());
/// assert!(stored_image("docker://r.example/a:v1").is_err());
/// ```
///
/// # Errors
/// What is wrong with it.
pub fn stored_image(s: &str) -> Result<Endpoint, String> {
    const EXPECTED: &str = "expected oci:PATH[:TAG|@DIGEST], s3://BUCKET/PREFIX[:TAG|@DIGEST], \
docker-archive:PATH[:REFERENCE] or oci-archive:PATH[:TAG] (an image in a layout, a bucket or an archive)";
    if !["oci:", "s3://", "docker-archive:", "oci-archive:"]
        .iter()
        .any(|p| s.starts_with(p))
    {
        return Err(EXPECTED.to_owned());
    }
    match endpoint(s)? {
        Endpoint::Registry { .. } => Err(EXPECTED.to_owned()),
        e => Ok(e),
    }
}

/// The value parser of every platform: `OS/ARCH[/VARIANT]`, normalised
/// ([`oci_manifest::platform::parse`]: `linux/x86_64` is `linux/amd64`).
///
/// ```
/// use oci_examples::cli::platform;
/// assert_eq!(platform("linux/x86_64").unwrap().to_string(), "linux/amd64");
/// assert!(platform("linux/amd64/v2/extra").is_err());
/// ```
///
/// # Errors
/// What is wrong with it.
pub fn platform(s: &str) -> Result<Platform, String> {
    oci_manifest::platform::parse(s).map_err(|e| match e {
        ManifestError::InvalidPlatform { reason, .. } => reason.to_owned(),
        other => escape(&other.to_string()).into_owned(),
    })
}

/// The value parser of counts of things done at once (`--jobs`, `--images`): 1 to
/// [`MAX_AT_ONCE`]. At 0 no transfer could ever start.
///
/// ```
/// use clap::Parser;
/// #[derive(Parser)]
/// struct Cli {
///     #[arg(long, default_value_t = 4, value_parser = oci_examples::cli::count())]
///     jobs: usize,
/// }
/// assert_eq!(Cli::try_parse_from(["x", "--jobs", "8"]).unwrap().jobs, 8);
/// let e = Cli::try_parse_from(["x", "--jobs", "0"]).err().unwrap().to_string();
/// assert!(e.contains("0 is not in 1..=256"), "{e}");
/// ```
pub fn count() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..=MAX_AT_ONCE)
}

/// The value parser of a digest that must be well formed: on error it says which kind of
/// error it is (`invalid format`, `invalid length`, `unsupported algorithm`).
///
/// ```
/// use oci_examples::cli::digest;
/// let d = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
/// assert_eq!(digest(d).unwrap().to_string(), d);
/// assert!(digest("sha256:abc").unwrap_err().starts_with("invalid length"));
/// assert!(digest("md5:00").unwrap_err().starts_with("unsupported algorithm"));
/// ```
///
/// # Errors
/// The kind of error and the parser's message.
pub fn digest(s: &str) -> Result<Digest, String> {
    s.parse::<Digest>().map_err(|e| {
        let kind = match e {
            ParseDigestError::InvalidFormat { .. } => "invalid format",
            ParseDigestError::InvalidLength { .. } => "invalid length",
            ParseDigestError::UnsupportedAlgorithm { .. } => "unsupported algorithm",
            _ => "invalid digest",
        };
        format!("{kind}: {}", escape(&e.to_string()))
    })
}

/// The value parser of a directory to write in (`--state-dir`): any path but the empty one.
///
/// ```
/// use oci_examples::cli::directory;
/// assert_eq!(directory("/tmp/up").unwrap(), std::path::PathBuf::from("/tmp/up"));
/// assert!(directory("").is_err());
/// ```
///
/// # Errors
/// When it is empty.
pub fn directory(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("needs a directory".to_owned());
    }
    Ok(PathBuf::from(s))
}

/// Registry credentials from the command line or the environment. `Debug` does not show the
/// password.
///
/// ```
/// let c = oci_examples::cli::creds("alice:s3cret:x").unwrap();
/// assert_eq!((c.user(), c.password()), ("alice", "s3cret:x"));
/// assert!(!format!("{c:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct Creds {
    user: String,
    password: String,
}

impl Creds {
    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password (or token).
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Creds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Creds")
            .field("user", &self.user)
            .field("password", &"(hidden)")
            .finish()
    }
}

/// The value parser of `--creds USER:PASS`: the user name ends at the first `:` (as with
/// Docker and skopeo), the password is the rest. Its messages never repeat the value.
///
/// ```
/// use oci_examples::cli::creds;
/// assert!(creds("alice:pw").is_ok());
/// assert!(!creds("alice-pw").unwrap_err().contains("alice"));
/// assert!(creds(":pw").is_err());
/// ```
///
/// # Errors
/// What is wrong, without the value.
pub fn creds(s: &str) -> Result<Creds, String> {
    let Some((user, password)) = s.split_once(':') else {
        return Err("expected USER:PASS (no ':' found)".to_owned());
    };
    if user.is_empty() {
        return Err("expected USER:PASS (the user name is empty)".to_owned());
    }
    Ok(Creds {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

/// The value parser of `--log-level`: a level or a `tracing` filter.
///
/// ```
/// use oci_examples::cli::log_filter;
/// assert!(log_filter("debug").is_ok());
/// assert!(log_filter("oci_store=trace,info").is_ok());
/// assert!(log_filter("oci_store=loud").is_err());
/// ```
///
/// # Errors
/// Why the filter does not parse.
pub fn log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| escape(&e.to_string()).into_owned())
}

/// The log option every example has.
///
/// ```
/// use clap::Parser;
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     log: oci_examples::cli::LogArgs,
/// }
/// let cli = Cli::try_parse_from(["x", "--log-level", "debug"]).unwrap();
/// assert_eq!(cli.log.log_level.as_deref(), Some("debug"));
/// ```
#[derive(Args, Debug, Clone, Default)]
pub struct LogArgs {
    /// Log the libraries' events to standard error: a level (error, warn, info, debug, trace)
    /// or a `tracing` filter (oci_store=debug,info); without it, RUST_LOG's filter, if any
    #[arg(long, value_name = "FILTER", value_parser = log_filter)]
    pub log_level: Option<String>,
}

impl LogArgs {
    /// Installs the log output ([`crate::init_logging`]) with this filter.
    ///
    /// ```
    /// oci_examples::cli::LogArgs::default().init("doc");
    /// ```
    pub fn init(&self, program: &str) {
        crate::init_logging(program, self.log_level.as_deref());
    }
}

/// How the examples that talk to registries reach them: the same options in `copy` and `sync`.
///
/// ```
/// use clap::Parser;
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     registry: oci_examples::cli::RegistryArgs,
/// }
/// let cli = Cli::try_parse_from(["x", "--plain-http", "--creds", "a:b", "--state-dir", "/s"]).unwrap();
/// assert!(cli.registry.plain_http);
/// assert_eq!(cli.registry.creds.unwrap().user(), "a");
/// ```
#[derive(Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Talk plain HTTP, not HTTPS, to the registries named (a registry on loopback)
    #[arg(long)]
    pub plain_http: bool,
    /// Credentials for every registry named, as USER:PASS (else those of Docker's config.json
    /// for each registry)
    ///
    /// Read from the environment variable OCI_RS_CREDS when the option is not given, which
    /// keeps the password out of the process list (`ps`).
    #[arg(
        long,
        value_name = "USER:PASS",
        env = CREDS_ENV,
        hide_env_values = true,
        value_parser = creds
    )]
    pub creds: Option<Creds>,
    /// Where pushes to registries record their upload sessions, so that a killed push resumes
    /// from what the registry has [default: $XDG_STATE_HOME/oci-rs/uploads, else
    /// ~/.local/state/oci-rs/uploads]
    #[arg(long, value_name = "DIR", value_parser = directory)]
    pub state_dir: Option<PathBuf>,
    /// Push blobs up to SIZE in one streamed PUT; larger ones as one streamed PATCH and a
    /// closing PUT, which a stopped push resumes from the registry's offset [default: 8MiB]
    #[arg(long, value_name = "SIZE")]
    pub monolithic_max: Option<Size>,
    /// Ask whether the registry has a blob up to SIZE with the request that starts its upload
    /// (a mount from the repository itself: one request instead of a HEAD and a POST); larger
    /// blobs, and all with 0, are asked with a HEAD first. A registry that does not mount
    /// gets such a blob again even when it has it [default: 1MiB]
    #[arg(long, value_name = "SIZE")]
    pub probe_max: Option<Size>,
    /// Push to the registries named in chunks of at most SIZE (for a registry that refuses
    /// streamed uploads or requests above a size, such as 4MiB); each chunk is held in memory
    /// while it is sent
    #[arg(long, value_name = "SIZE", value_parser = chunk_size)]
    pub chunked_upload: Option<Size>,
}

/// A chunk size: a [`Size`] of at least 64 KiB (smaller chunks would mean a request per few
/// kilobytes).
///
/// ```
/// use oci_examples::{cli::chunk_size, size::Size};
/// assert_eq!(chunk_size("4MiB"), Ok(Size(4 << 20)));
/// assert!(chunk_size("0").is_err());
/// assert!(chunk_size("1KiB").is_err());
/// ```
pub fn chunk_size(s: &str) -> Result<Size, String> {
    let size: Size = s
        .parse()
        .map_err(|e: crate::size::SizeError| e.to_string())?;
    if size.0 < 64 << 10 {
        return Err(format!("{size} is below the smallest chunk, 64 KiB"));
    }
    Ok(size)
}

/// Mirrors to pull blobs from besides the source registry (`copy --mirror`,
/// `--registries-conf`): with any, the blobs are fetched in pieces from the mirrors and the
/// source at once, every piece checked, a bad one fetched again elsewhere.
///
/// ```
/// use clap::Parser;
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     mirrors: oci_examples::cli::MirrorArgs,
/// }
/// let cli = Cli::try_parse_from(["x", "--mirror", "127.0.0.1:5001", "--mirror", "m.local/hub"]).unwrap();
/// assert_eq!(cli.mirrors.mirror, ["127.0.0.1:5001", "m.local/hub"]);
/// assert!(Cli::try_parse_from(["x", "--mirror", "not a host"]).is_err());
/// ```
#[derive(Args, Debug, Clone, Default)]
pub struct MirrorArgs {
    /// A mirror of the source registry to fetch blobs from too, as REGISTRY[/NAMESPACE]
    /// (repeatable; tried in order, the source last); the mirror's repository is the source's
    /// under NAMESPACE. --plain-http and --creds apply to mirrors too
    #[arg(long, value_name = "REGISTRY", value_parser = mirror_location)]
    pub mirror: Vec<String>,
    /// Read mirrors from a containers-registries.conf(5) file (`[[registry]]` tables with
    /// `[[registry.mirror]]`), as skopeo and podman do
    #[arg(long, value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,
}

/// Parses `--mirror`: `host[:port][/namespace...]`.
///
/// # Errors
/// What is wrong, for clap's message.
pub fn mirror_location(s: &str) -> Result<String, String> {
    let probe = format!("{s}/probe");
    let r = oci_distribution_client::Reference::parse(&probe)
        .map_err(|e| format!("not REGISTRY[/NAMESPACE]: {e}"))?;
    let host = s.split('/').next().unwrap_or(s);
    if r.registry() != host {
        return Err("not REGISTRY[/NAMESPACE]: the first part must be a registry host (with a dot or a port, or localhost)".into());
    }
    Ok(s.to_owned())
}

/// `--format`: the media types a copy converts manifests to.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OCI image manifests and indexes
    Oci,
    /// Docker schema 2 manifests and manifest lists
    Docker,
}

impl From<Format> for Flavor {
    fn from(f: Format) -> Flavor {
        match f {
            Format::Oci => Flavor::Oci,
            Format::Docker => Flavor::Docker,
        }
    }
}

/// What to copy and how: the same options in `copy` and `sync`.
///
/// ```
/// use clap::Parser;
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     copy: oci_examples::cli::CopyArgs,
/// }
/// let cli = Cli::try_parse_from(["x", "--platform", "linux/arm64", "--retries", "7"]).unwrap();
/// let o = cli.copy.options();
/// assert_eq!((o.platforms.len(), o.retries), (1, 7));
/// assert!(Cli::try_parse_from(["x", "--platform", "linux/arm64", "--all"]).is_err());
/// assert!(Cli::try_parse_from(["x", "--format", "zip"]).is_err());
/// ```
#[derive(Args, Debug, Clone)]
pub struct CopyArgs {
    /// Copy only this platform (repeatable); the result is a reduced index that refers only to
    /// what was copied
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = platform)]
    pub platform: Vec<Platform>,
    /// Copy every platform (the default)
    #[arg(long, conflicts_with = "platform")]
    pub all: bool,
    /// Do not trust the destination's "I have it": read it back, store again what it does not
    /// serve, and read the result back
    #[arg(long)]
    pub verify_existing: bool,
    /// Also copy the referrers (signatures, SBOMs, attestations)
    #[arg(long)]
    pub referrers: bool,
    /// Convert manifests to these media types
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    /// After copying, push the piece maps of the image's layers beside it: one OCI artifact
    /// per image manifest, its subject (referrers API, or the tag schema fallback)
    ///
    /// A later pull from several sources (--mirror, --registries-conf) checks every piece
    /// against these maps as it arrives (advisory: a wrong map costs refetches, never a wrong
    /// blob). Costs a second SHA-256 pass over the layers.
    #[arg(long)]
    pub piece_maps: bool,
    /// The retry budget of each copy: retries in all after transient failures, shared by every
    /// blob, manifest and the tag of the copy
    ///
    /// A request that keeps failing is sent at most 1 + N times (sync: plus the re-runs of its
    /// line, see --retry-budget); the summary says how many retries were used.
    #[arg(long, value_name = "N", default_value_t = CopyOptions::default().retries)]
    pub retries: u32,
}

impl CopyArgs {
    /// The copy options these arguments ask for (the rest at their defaults).
    ///
    /// See [`CopyArgs`] for an example.
    pub fn options(&self) -> CopyOptions {
        let mut o = CopyOptions::default();
        o.platforms = self.platform.clone();
        o.include_referrers = self.referrers;
        o.format = self.format.map(Flavor::from);
        o.retries = self.retries;
        o.piece_maps = self.piece_maps;
        if self.verify_existing {
            o.verify = VerifyMode::Range;
        }
        o
    }
}
