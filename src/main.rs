/// The replay path allocates a few small strings per event (keys, lanes, paths); mimalloc
/// makes that markedly cheaper than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(emstail::cli::main());
}
