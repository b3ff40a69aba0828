//! `millrace-bench`: a load generator for any Kinesis Data Streams endpoint (Millrace or a peer) over the JSON
//! protocol, SigV4-signed, plus the `ceiling-server` that shows what plain HTTP allows on this machine.
//!
//! Every workload prints progress on stderr and one JSON result line on stdout. It knows nothing of Millrace's
//! internals: it talks to the endpoint only through the public protocol and reads the server's CPU and memory
//! from /proc.

mod bodies;
mod ceiling;
mod client;
mod proc_stats;
mod report;
mod sigv4;
mod workloads;

use std::io::Write as _;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::{Map, Value};

use workloads::Common;

#[derive(Parser)]
#[command(
    name = "millrace-bench",
    about = "Load generator for Kinesis Data Streams endpoints"
)]
struct Cli {
    /// Runtime worker threads (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// PutRecords batches as fast as the endpoint takes them.
    Put {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: workloads::put::PutArgs,
    },
    /// PutRecord calls as fast as the endpoint takes them.
    PutSingle {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: workloads::put::PutArgs,
    },
    /// Fill a stream, then drain all its shards with GetRecords.
    Get {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: workloads::get::GetArgs,
    },
    /// Producers and consumers at once; end-to-end latency from put to GetRecords visibility.
    Mixed {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: workloads::mixed::MixedArgs,
    },
    /// Enhanced fan-out: latency from put to SubscribeToShard push, for N consumers.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: workloads::fanout::FanoutArgs,
    },
    /// Create N streams of M shards; time and server RSS.
    Shards {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: workloads::shards::ShardsArgs,
    },
    /// Kinesis Queues: a backlog behind a queue (RSS reported), drained by competing consumers
    /// with ReceiveQueueRecords and AcknowledgeQueueRecords.
    Queues {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: workloads::queues::QueuesArgs,
    },
    /// Fill a server it starts itself, SIGKILL it, restart it and time until it serves again.
    Restart {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: workloads::restart::RestartArgs,
    },
    /// The minimal HTTP server answering PutRecords with a fixed, correctly sized reply.
    CeilingServer {
        #[command(flatten)]
        args: ceiling::CeilingArgs,
    },
}

fn emit(common: &Common, mut result: Map<String, Value>) -> anyhow::Result<()> {
    if let Some(label) = &common.label {
        result.insert("label".into(), label.clone().into());
    }
    let line = serde_json::to_string(&Value::Object(result)).expect("JSON values serialize");
    if let Some(path) = &common.out {
        std::fs::write(path, format!("{line}\n"))
            .with_context(|| format!("write {}", path.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").context("write the result")?;
    Ok(())
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Put { common, args } => {
            emit(&common, workloads::put::run(&common, &args, false).await?)
        }
        Command::PutSingle { common, args } => {
            emit(&common, workloads::put::run(&common, &args, true).await?)
        }
        Command::Get { common, args } => emit(&common, workloads::get::run(&common, &args).await?),
        Command::Mixed { common, args } => {
            emit(&common, workloads::mixed::run(&common, &args).await?)
        }
        Command::Fanout { common, args } => {
            emit(&common, workloads::fanout::run(&common, &args).await?)
        }
        Command::Shards { common, args } => {
            emit(&common, workloads::shards::run(&common, &args).await?)
        }
        Command::Queues { common, args } => {
            emit(&common, workloads::queues::run(&common, &args).await?)
        }
        Command::Restart { common, args } => {
            emit(&common, workloads::restart::run(&common, &args).await?)
        }
        Command::CeilingServer { args } => ceiling::serve(&args).await,
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = cli.threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = builder.build().context("start the async runtime")?;
    if let Err(error) = runtime.block_on(run(cli.command)) {
        tracing::error!("failed to {error:#}");
        return Err(error);
    }
    Ok(())
}
