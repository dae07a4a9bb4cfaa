fn main() {
    std::process::exit(emstail::cli::main());
}
