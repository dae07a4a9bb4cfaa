//! `emstail status` and the `dead-letters` listing on a state directory whose dead-letter file
//! is not a regular file.

mod support;

use support::emstail::{Emstail, Setup, utf8};

/// A dead-letter file that is a FIFO hung `status` and the `dead-letters` listing, each
/// waiting for a writer (the run is killed at the harness's time limit, failing the test);
/// a link to /dev/null was listed as empty. Now status says so and the listing refuses both,
/// naming the file, and the file is left as it is.
#[test]
fn a_dead_letter_file_that_is_not_a_regular_file_hangs_neither_status_nor_the_listing() {
    let setup = Setup::bare("http://127.0.0.1:9");
    let config = setup.write();
    let state = setup.state_dir();
    std::fs::create_dir_all(&state).expect("the state dir");
    let path = setup.dead_letter_path();
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let refused = format!("{}: not a regular file", path.display());

    let plain = Emstail::new(["status", "--state-dir", utf8(&state)]).run();
    plain.assert_exit(0);
    assert!(
        plain
            .stdout
            .contains(&format!("\ndead letters: unknown ({refused}")),
        "{}",
        plain.stdout
    );

    let listing = || {
        Emstail::new(["dead-letters", "--config"])
            .arg(&config)
            .run()
    };
    let run = listing();
    run.assert_exit(1);
    run.assert_stderr_has(&format!("emstail: {refused}"));
    let kind = std::fs::symlink_metadata(&path).expect("stat").file_type();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&kind));

    std::fs::remove_file(&path).expect("remove the FIFO");
    std::os::unix::fs::symlink("/dev/null", &path).expect("link to /dev/null");
    let run = listing();
    run.assert_exit(1);
    run.assert_stderr_has(&format!("emstail: {refused}"));
}
