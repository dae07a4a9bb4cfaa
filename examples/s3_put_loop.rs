//! Baseline for the upload benchmark: PUT every file of a directory with the daemon's own
//! S3 client setup and nothing else (no log, no plugins, no lanes), from N threads.
//!
//!   EMSTAIL_S3_ACCESS_KEY=… EMSTAIL_S3_SECRET_KEY=… cargo run --example s3_put_loop -- \
//!       --endpoint http://127.0.0.1:8014 --bucket bench --dir /tmp/segments --concurrency 8
//!
//! With `--list FILE` instead of `--dir`, it makes exactly the PUTs listed, one
//! `KEY<TAB>PATH` per line, in that order (the same keys and files as a replay made); a line
//! `KEY<TAB>` with no path is a DELETE of that key (a backfill's deletes).
//!
//! The bucket must exist. Prints uploads/s; the gap to the daemon's rate is its overhead.

use clap::Parser;
use emstail::action::Secret;
use emstail::config::UploadParams;
use emstail::exec::s3::S3Target;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// S3-compatible endpoint (path-style).
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    bucket: String,
    /// Every regular file directly in it is uploaded once, keyed by its name.
    #[arg(long, required_unless_present = "list", conflicts_with = "list")]
    dir: Option<PathBuf>,
    /// `KEY<TAB>PATH` lines: the PUTs to make, in order.
    #[arg(long)]
    list: Option<PathBuf>,
    /// Uploading threads.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3_put_loop: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let env = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let params = UploadParams {
        aws_access_key: Some(env("EMSTAIL_S3_ACCESS_KEY")?),
        aws_secret_key: Some(Secret::new(env("EMSTAIL_S3_SECRET_KEY")?)),
        endpoint: Some(args.endpoint.clone()),
        default_bucket: args.bucket.clone(),
        ..UploadParams::default()
    };
    let target = S3Target::new(&params)?;
    let puts = match (&args.list, &args.dir) {
        (Some(list), _) => listed(list)?,
        (None, Some(dir)) => in_dir(dir)?,
        (None, None) => return Err("give --dir or --list".to_string()),
    };

    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..args.concurrency.max(1) {
            scope.spawn(|| {
                while let Some((key, path)) = puts.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let result = if path.as_os_str().is_empty() {
                        target.delete(&args.bucket, key).map(|_| ())
                    } else {
                        target
                            .put(
                                &args.bucket,
                                key,
                                path,
                                "application/octet-stream",
                                "max-age=60",
                                None,
                            )
                            .map(|_| ())
                    };
                    if let Err(e) = result {
                        eprintln!("{key}: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let failed = failed.into_inner();
    let done = puts.len() - failed;
    println!(
        "{done} uploads ({failed} failed) in {elapsed:.3} s with {} threads: {:.1} uploads/s",
        args.concurrency.max(1),
        done as f64 / elapsed
    );
    if failed > 0 {
        return Err(format!("{failed} uploads failed"));
    }
    Ok(())
}

/// Every regular file directly in `dir`, keyed by its name, sorted.
fn in_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.path())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no files to upload", dir.display()));
    }
    Ok(files
        .into_iter()
        .map(|path| {
            let key = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            (key, path)
        })
        .collect())
}

/// The `KEY<TAB>PATH` lines of `list`.
fn listed(list: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let text = std::fs::read_to_string(list).map_err(|e| format!("{}: {e}", list.display()))?;
    let puts = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| {
            line.split_once('\t')
                .map(|(key, path)| (key.to_string(), PathBuf::from(path)))
                .ok_or_else(|| format!("{}:{}: not KEY<TAB>PATH", list.display(), i + 1))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if puts.is_empty() {
        return Err(format!("{}: no PUTs listed", list.display()));
    }
    Ok(puts)
}
