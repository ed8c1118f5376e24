//! The `ec2-harden` binary: parse the command line, set up logging to stderr, run, and map the
//! result to the exit codes of the CLI contract. Everything else lives in the library.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EC2_HARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();

    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                cli::Exit::Config as u8
            } else {
                0
            });
        }
    };
    match cli::run(cli) {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(failure) => {
            // Always shown, whatever EC2_HARDEN_LOG says: the reason for a non-zero exit.
            let _ = writeln!(std::io::stderr(), "{}", describe(&failure.error));
            ExitCode::from(failure.exit as u8)
        }
    }
}

/// The error and its causes on one line, each cause once: errors that already print their source
/// (`path: No such file or directory`) are not followed by it again. Baseline diagnostics
/// (`FILE:LINE:COL: error: ...`) are printed as they are, one per line.
fn describe(error: &anyhow::Error) -> String {
    if let Some(ec2_harden::baseline::BaselineError::Invalid(_)) = error.downcast_ref() {
        return error.to_string();
    }
    let mut text = String::from("ec2-harden: error: ");
    let mut last = String::new();
    for (i, cause) in error.chain().enumerate() {
        let msg = cause.to_string();
        if last.ends_with(&msg) {
            continue;
        }
        if i > 0 {
            text.push_str(": ");
        }
        text.push_str(&msg);
        last = msg;
    }
    text
}
