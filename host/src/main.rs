//! The `partita` command line: `partita run`, `partita test`,
//! `partita validate`, `partita deploy` and `partita new`.

use std::process::ExitCode;

use clap::Parser;

use partita::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    partita::cli::init_logging(cli.log.as_deref());
    let result = match cli.command {
        Command::Test(args) => partita::cli::test::main(args),
        Command::Run(args) => partita::cli::run::main(args),
        Command::Deploy(args) => partita::cli::deploy::main(args),
        Command::New(args) => partita::cli::new::main(args),
        Command::Validate(args) => return partita::cli::validate::main(*args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: what failed and where, with its causes.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
