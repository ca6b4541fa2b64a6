//! The command line: `[--smoke] [--json out.json] [--only a,b,...]
//! [--extra-group]`.

use anyhow::{Context, bail};

/// One part of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    /// End-to-end ingest throughput vs raw `COPY`.
    Ingest,
    /// Ack latency at fixed rates vs `XADD`; storage lag.
    Latency,
    /// Chart query from rollups vs raw events.
    Chart,
    /// Resident memory per idle device connection.
    Connections,
    /// Authenticated reads vs liveness.
    Api,
    /// Create-booking on distinct areas and on one area.
    Bookings,
}

impl Section {
    const ALL: [Self; 6] = [
        Self::Ingest,
        Self::Latency,
        Self::Chart,
        Self::Connections,
        Self::Api,
        Self::Bookings,
    ];

    /// Its name on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Latency => "latency",
            Self::Chart => "chart",
            Self::Connections => "connections",
            Self::Api => "api",
            Self::Bookings => "bookings",
        }
    }

    fn parse(name: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name.trim())
            .with_context(|| format!("--only: unknown section `{name}`"))
    }
}

/// What to run.
#[derive(Debug)]
pub(crate) struct Options {
    /// Tiny sizes, seconds in all.
    pub(crate) smoke: bool,
    /// Where to write the JSON report.
    pub(crate) json: Option<String>,
    /// Sections, in running order.
    pub(crate) only: Vec<Section>,
    /// Registers one more consumer group on the events stream, followed by
    /// a consumer that acks what it reads (a module reacting to events).
    pub(crate) extra_group: bool,
}

/// What `--help` prints.
pub(crate) const USAGE: &str = "\
hse-bench: the HSE benchmarks, each figure beside a baseline measured in the same run

USAGE:
    cargo run --release -p hse-bench -- [--smoke] [--json out.json] [--only LIST] [--extra-group]

OPTIONS:
    --smoke          tiny sizes, seconds in all (what scripts/test runs)
    --json PATH      also write the report as JSON
    --only LIST      comma-separated sections: ingest,latency,chart,connections,api,bookings
                     [all, in that order]
    --extra-group    the device pipeline also feeds one more consumer group (`bench-module`),
                     read and acked by a follower, as a module reacting to events would
    -h, --help       this text

ENVIRONMENT:
    HSE_DATABASE_URL   PostgreSQL; each section makes and drops its own database
                       [postgres://postgres@127.0.0.1:5432/hse]
    HSE_REDIS_URL      Redis; a random key prefix, deleted afterwards [redis://127.0.0.1:6379]

The results and their analysis: BENCHMARKS.md.
";

impl Options {
    /// Parses the arguments (without the program name).
    pub(crate) fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut options = Self {
            smoke: false,
            json: None,
            only: Section::ALL.to_vec(),
            extra_group: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--smoke" => options.smoke = true,
                "--extra-group" => options.extra_group = true,
                "--json" => {
                    options.json = Some(args.next().context("--json needs a path")?.clone())
                }
                "--only" => {
                    let list = args.next().context("--only needs a list")?;
                    let wanted = list
                        .split(',')
                        .map(Section::parse)
                        .collect::<Result<Vec<_>, _>>()?;
                    options.only = Section::ALL
                        .into_iter()
                        .filter(|s| wanted.contains(s))
                        .collect();
                }
                other => bail!("unknown argument `{other}`\n\n{USAGE}"),
            }
        }
        Ok(options)
    }
}
