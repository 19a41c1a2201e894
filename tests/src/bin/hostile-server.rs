//! A hostile sync server for the binding suites: relays to a real server and rewrites its
//! answers as a breached server would. Prints `listening on http://ADDR`; choose an attack with
//! `GET /_hostile/attack?name=NAME` (`none`, `forge-log`, `withhold-last-entry`,
//! `swap-box-keys`). Runs until killed.

use clap::Parser;

/// Command line of the hostile server.
#[derive(Parser)]
#[command(name = "hostile-server")]
struct Args {
    /// The real server to relay to, e.g. http://127.0.0.1:7878.
    #[arg(long)]
    upstream: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match waymark_e2e::hostile::HostileServer::start(&args.upstream) {
        Ok(server) => {
            println!("listening on {}", server.url());
            loop {
                std::thread::park();
            }
        }
        Err(e) => {
            eprintln!("hostile-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
