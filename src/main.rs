//! The binary: parse the command line, set up logging, run the command, exit with its code.

use clap::Parser;

fn main() {
    #[cfg(feature = "failpoints")]
    let _failpoints = hostedscan_agent::failpoint::setup();
    let cli = match hostedscan_agent::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => hostedscan_agent::exit::USAGE,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    hostedscan_agent::logging::init(cli.log_format, cli.verbose, cli.quiet);
    std::process::exit(hostedscan_agent::commands::dispatch(cli));
}
