//! The `wgrad` command: parses the command line, runs the subcommand, and maps errors to an
//! exit status. Everything it does is in the library; the subcommands live in `src/cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cli::quiet_headless_mesa();
    let args = cli::Cli::parse();
    cli::logging::init(args.verbose, args.quiet());
    match cli::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log::error!("{}", cli::logging::chain(&e));
            ExitCode::from(cli::exit_code(&e))
        }
    }
}
