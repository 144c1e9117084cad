//! `partita validate`: compares two topics by business key within a time
//! window and exits 0 when they agree (docs/VALIDATE.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::validate::diff::Rules;
use crate::validate::key::KeySpec;
use crate::validate::report::{self, Title};
use crate::validate::source::{From, Until};
use crate::validate::{self, DiffSink, Options, SideProcessor, ValidateError};

/// Exit status when the mismatch share is above `--max-mismatch`.
const ABOVE_THRESHOLD: u8 = 1;
/// Exit status for bad usage, an unreachable broker or a local failure.
const NO_VERDICT: u8 = 2;

/// Arguments of `partita validate`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when the mismatch share (every record not in \
    `match`, over all records) is at most --max-mismatch, 1 when above, 2 for bad usage, \
    an unreachable broker or a local failure.\nSee docs/VALIDATE.md."
)]
pub struct ValidateArgs {
    /// Bootstrap servers (host:port,...); may come from --config instead.
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: Option<String>,
    /// The legacy output topic.
    #[arg(long, value_name = "TOPIC")]
    pub left: String,
    /// The new output topic.
    #[arg(long, value_name = "TOPIC")]
    pub right: String,
    /// The business key: `record` (the Kafka key) or JSON pointers into
    /// the value, comma-separated (`/customer,/id`).
    #[arg(
        long,
        default_value = "record",
        value_name = "record|/POINTER[,/POINTER]"
    )]
    pub key: String,
    /// Records pair when their timestamps are at most this far apart.
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub window: String,
    /// How long after its window closes a record is still taken; later
    /// ones are `late`.
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub grace: String,
    /// A field not to compare, as a JSON pointer (repeatable).
    #[arg(long, value_name = "/POINTER")]
    pub ignore: Vec<String>,
    /// A numeric tolerance: `0.01` (absolute) or `0.5%` (relative) for
    /// every number, or `/pointer=0.5%` for one field (repeatable).
    #[arg(long, value_name = "[/POINTER=]T")]
    pub tolerance: Vec<String>,
    /// Where to start: earliest, latest, or a timestamp in ms since the
    /// epoch.
    #[arg(long, default_value = "earliest", value_name = "earliest|latest|MS")]
    pub from: String,
    /// Where to stop: `end` (the end offsets when the run starts) or
    /// `follow` (until interrupted).
    #[arg(long, default_value = "end", value_name = "end|follow")]
    pub until: String,
    /// The largest mismatch share (0 to 1) that still exits 0.
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    pub max_mismatch: f64,
    /// Write a self-contained HTML report to this file.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Write every non-match, one JSON object each, to a file or to
    /// `topic:NAME`.
    #[arg(long, value_name = "FILE.jsonl|topic:NAME")]
    pub diffs: Option<String>,
    /// The summary's format on stdout.
    #[arg(long, default_value = "text", value_name = "text|json")]
    pub format: String,
    /// A pipeline file whose [kafka] bootstrap, properties and consumer
    /// properties (TLS, SASL...) the clients use.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A librdkafka property for every client (repeatable), after --config.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub property: Vec<String>,
    /// Where waiting records are kept (default: a fresh temporary folder,
    /// removed at the end).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// A processor (.wasm) run over the left side's records before they
    /// are keyed and compared (for example csv-to-json).
    #[arg(long, value_name = "FILE.wasm")]
    pub left_processor: Option<PathBuf>,
    /// A configuration entry of the left processor (repeatable).
    #[arg(long, value_name = "KEY=VALUE", requires = "left_processor")]
    pub left_config: Vec<String>,
    /// A processor (.wasm) run over the right side's records first.
    #[arg(long, value_name = "FILE.wasm")]
    pub right_processor: Option<PathBuf>,
    /// A configuration entry of the right processor (repeatable).
    #[arg(long, value_name = "KEY=VALUE", requires = "right_processor")]
    pub right_config: Vec<String>,
    /// Memory of the store of waiting records, in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub state_memory_mb: usize,
}

/// Runs `partita validate`; prints its own errors (exit status 2).
pub fn main(args: ValidateArgs) -> ExitCode {
    match validate(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::from(NO_VERDICT)
        }
    }
}

fn usage(message: String) -> ValidateError {
    ValidateError::Usage(message)
}

fn validate(args: ValidateArgs) -> Result<ExitCode, ValidateError> {
    let options = options(&args)?;
    let json = match args.format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            return Err(usage(format!(
                "--format: `{other}` is neither text nor json"
            )));
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    if options.until == Until::Follow {
        let flag = stop.clone();
        let _ = ctrl_c(move || flag.store(true, std::sync::atomic::Ordering::Relaxed));
    }
    let summary = validate::run(options, stop)?;
    if let Some(path) = &args.report {
        let page = report::html(
            &summary,
            &Title {
                left: &args.left,
                right: &args.right,
                key: &args.key,
                max_mismatch: args.max_mismatch,
            },
        );
        std::fs::write(path, page).map_err(|e| ValidateError::Local {
            what: format!("--report: cannot write {}", path.display()),
            source: e.into(),
        })?;
    }
    if json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.to_text(args.max_mismatch));
    }
    Ok(if summary.mismatch_share() <= args.max_mismatch {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(ABOVE_THRESHOLD)
    })
}

/// Calls `f` on the first SIGINT or SIGTERM (following runs stop cleanly
/// and still print their summary).
fn ctrl_c(f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        });
        f();
    });
    Ok(())
}

/// Checks every argument and builds the run's options.
fn options(args: &ValidateArgs) -> Result<Options, ValidateError> {
    let mut client = ClientConfig::new();
    let mut bootstrap = None;
    if let Some(file) = &args.config {
        bootstrap = read_kafka_table(file, &mut client)?;
    }
    for p in &args.property {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| usage(format!("-X: `{p}` is not KEY=VALUE")))?;
        client.set(k.trim(), v.trim());
    }
    let bootstrap = args.bootstrap.clone().or(bootstrap).ok_or_else(|| {
        usage("no bootstrap servers: give --bootstrap HOST:PORT (or a --config file with [kafka] bootstrap)".into())
    })?;
    client.set("bootstrap.servers", &bootstrap);
    let key: KeySpec = args.key.parse().map_err(|e| usage(format!("--key: {e}")))?;
    let window = parse_duration(&args.window).map_err(|e| usage(format!("--window: {e}")))?;
    let grace = parse_duration(&args.grace).map_err(|e| usage(format!("--grace: {e}")))?;
    let mut rules = Rules::default();
    for i in &args.ignore {
        rules
            .add_ignore(i)
            .map_err(|e| usage(format!("--ignore: {e}")))?;
    }
    for t in &args.tolerance {
        rules
            .add_tolerance(t)
            .map_err(|e| usage(format!("--tolerance {e}")))?;
    }
    let from = match args.from.as_str() {
        "earliest" => From::Earliest,
        "latest" => From::Latest,
        ms => From::Timestamp(ms.parse().map_err(|_| {
            usage(format!(
                "--from: `{ms}` is not earliest, latest or a timestamp in ms since the epoch"
            ))
        })?),
    };
    let until = match args.until.as_str() {
        "end" => Until::End,
        "follow" => Until::Follow,
        other => {
            return Err(usage(format!(
                "--until: `{other}` is neither end nor follow"
            )));
        }
    };
    if !(0.0..=1.0).contains(&args.max_mismatch) {
        return Err(usage(format!(
            "--max-mismatch: {} is not a share from 0 to 1",
            args.max_mismatch
        )));
    }
    let diffs = args.diffs.as_ref().map(|d| match d.strip_prefix("topic:") {
        Some(topic) => DiffSink::Topic(topic.to_string()),
        None => DiffSink::File(PathBuf::from(d)),
    });
    if args.left == args.right {
        return Err(usage(format!(
            "--left and --right are the same topic ({})",
            args.left
        )));
    }
    let processor = |path: &Option<PathBuf>, config: &[String], flag: &str| {
        let Some(path) = path else {
            return Ok(None);
        };
        let config = config
            .iter()
            .map(|c| match c.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(usage(format!("{flag}: `{c}` is not KEY=VALUE"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(SideProcessor {
            path: path.clone(),
            config,
        }))
    };
    let processors = [
        processor(&args.left_processor, &args.left_config, "--left-config")?,
        processor(&args.right_processor, &args.right_config, "--right-config")?,
    ];
    Ok(Options {
        processors,
        client,
        left: args.left.clone(),
        right: args.right.clone(),
        key,
        window,
        grace,
        rules,
        from,
        until,
        state_dir: args.state_dir.clone(),
        state_memory: args.state_memory_mb.saturating_mul(1 << 20),
        diffs,
        progress_every: Some(Duration::from_secs(2)),
        cache_dir: super::compiled_cache_dir(),
    })
}

/// A duration with a unit: `500ms`, `2s`, `1.5m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{s}` has no unit (write 500ms, 2s, 1m or 1h)"))?;
    let (number, unit) = s.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (write 500ms, 2s, 1m or 1h)"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{s}` is out of range"))
}

/// Reads `bootstrap`, `properties` and `consumer` of the `[kafka]` table of
/// a pipeline file into `client`; returns the bootstrap servers.
fn read_kafka_table(
    file: &Path,
    client: &mut ClientConfig,
) -> Result<Option<String>, ValidateError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| usage(format!("--config: cannot read {}: {e}", file.display())))?;
    let doc: toml::Table = text
        .parse()
        .map_err(|e| usage(format!("--config: {}: {e}", file.display())))?;
    let Some(kafka) = doc.get("kafka").and_then(toml::Value::as_table) else {
        return Err(usage(format!(
            "--config: {} has no [kafka] table",
            file.display()
        )));
    };
    for table in ["properties", "consumer"] {
        let Some(props) = kafka.get(table) else {
            continue;
        };
        let props = props.as_table().ok_or_else(|| {
            usage(format!(
                "--config: {}: kafka.{table} is not a table",
                file.display()
            ))
        })?;
        for (k, v) in props {
            let v = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                _ => {
                    return Err(usage(format!(
                        "--config: {}: kafka.{table}.{k}: expected a string, number or boolean",
                        file.display()
                    )));
                }
            };
            client.set(k, v);
        }
    }
    Ok(kafka
        .get("bootstrap")
        .and_then(toml::Value::as_str)
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("2"),
            Err("`2` has no unit (write 500ms, 2s, 1m or 1h)".into())
        );
        assert_eq!(
            parse_duration("2d"),
            Err("`2d`: unknown unit `d` (use ms, s, m or h)".into())
        );
        assert_eq!(
            parse_duration("s"),
            Err("`s` is not a duration (write 500ms, 2s, 1m or 1h)".into())
        );
    }
}
