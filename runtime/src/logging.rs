//! Logging set-up: one global `tracing` subscriber, JSON or plain, filtered with `RUST_LOG`
//! syntax. Set up once, first thing in `main`, so every later step can log.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::args::{LogArgs, LogFormat};

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log filter {filter:?} is not valid RUST_LOG syntax: {source}")]
    Filter {
        filter: String,
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global log subscriber is already installed")]
    AlreadyInstalled(#[from] tracing::subscriber::SetGlobalDefaultError),
}

/// The subscriber `args` ask for, writing to `writer`; `ansi` colours plain lines (only wanted
/// on a terminal: log collectors would store the escape codes). Separate from [`init`] so the
/// choice of format and filter is testable without touching the process-wide default.
pub fn subscriber<W>(
    args: &LogArgs,
    writer: W,
    ansi: bool,
) -> Result<Box<dyn tracing::Subscriber + Send + Sync>, LogError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&args.log_level).map_err(|source| LogError::Filter {
        filter: args.log_level.clone(),
        source,
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    Ok(match args.log_format {
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
        LogFormat::Plain => Box::new(builder.finish()),
    })
}

/// Installs the subscriber `args` ask for as the process default, writing to stderr.
pub fn init(args: &LogArgs) -> Result<(), LogError> {
    tracing::subscriber::set_global_default(subscriber(
        args,
        std::io::stderr,
        std::io::stderr().is_terminal(),
    )?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// Collects everything the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().expect("lock").clone();
            String::from_utf8(bytes)
                .expect("utf-8")
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    fn log_with(format: LogFormat, level: &str) -> Vec<String> {
        let args = LogArgs {
            log_format: format,
            log_level: level.to_owned(),
        };
        let captured = Captured::default();
        let subscriber = subscriber(&args, captured.clone(), false).expect("valid filter");
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(pool = "blue", "pool ready");
            tracing::debug!("resync");
        });
        captured.lines()
    }

    #[test]
    fn json_format_writes_one_object_per_event_with_fields() {
        let lines = log_with(LogFormat::Json, "info");
        assert_eq!(lines.len(), 1, "debug is filtered out: {lines:?}");
        let event: serde_json::Value = serde_json::from_str(&lines[0]).expect("json line");
        assert_eq!(event["level"], "INFO");
        assert_eq!(event["message"], "pool ready");
        assert_eq!(event["pool"], "blue");
    }

    #[test]
    fn plain_format_writes_readable_lines() {
        let lines = log_with(LogFormat::Plain, "info");
        assert_eq!(lines.len(), 1);
        assert!(serde_json::from_str::<serde_json::Value>(&lines[0]).is_err());
        assert!(lines[0].contains("INFO"), "{}", lines[0]);
        assert!(
            lines[0].contains("pool ready pool=\"blue\""),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn filter_level_lets_debug_through() {
        let lines = log_with(LogFormat::Plain, "debug");
        assert_eq!(lines.len(), 2);
        assert!(lines[1].contains("resync"));
    }

    #[test]
    fn invalid_filter_is_refused_with_its_text() {
        let args = LogArgs {
            log_format: LogFormat::Plain,
            log_level: "ferrolb=notalevel".to_owned(),
        };
        match subscriber(&args, std::io::sink, false) {
            Err(LogError::Filter { filter, .. }) => assert_eq!(filter, "ferrolb=notalevel"),
            other => panic!("expected a filter error, got {:?}", other.map(|_| ())),
        }
    }
}
