//! Project tasks: `cargo xtask <task>`.

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        _ => {
            eprintln!("usage: cargo xtask <task>\n\ntasks:\n  (none yet)");
            Ok(())
        }
    }
}
