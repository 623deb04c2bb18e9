//! The `ndsr` command line (a placeholder until the CLI issue).

fn main() {
    eprintln!("ndsr: the command line is not built yet");
    std::process::exit(2);
}
