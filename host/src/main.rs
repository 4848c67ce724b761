fn main() -> std::process::ExitCode {
    helio::cli::run()
}
