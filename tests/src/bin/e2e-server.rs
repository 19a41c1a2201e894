//! The sync server, built within the end-to-end package so tests can start it as a process.

fn main() -> std::process::ExitCode {
    waymark_server::cli::main()
}
