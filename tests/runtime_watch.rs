//! Watching a real jobs directory through `petit::runtime::watch` on a current-thread runtime.
//!
//! A change is proven by awaiting [`JobsWatcher::changed`]. The absence of a change is proven by
//! a bounded wait, [`NO_CHANGE_WAIT`], longer than the debounce: nothing else can show that an
//! event did not come.

#![allow(clippy::disallowed_methods)] // a test may read clocks, spawn processes and sleep

use std::path::Path;
use std::time::Duration;

use petit::runtime::watch::{JobsWatcher, WatchError, QUIET_PERIOD};

/// How long a test waits to conclude that no change is reported.
const NO_CHANGE_WAIT: Duration = Duration::from_millis(600);

/// Bounds how long a broken test waits for a change that never comes.
const CHANGE_LIMIT: Duration = Duration::from_secs(10);

const JOB: &str = "id: hello\ntasks:\n  - id: greet\n    command: echo\n";

fn temp_dir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("cannot create a temporary directory: {err}"),
    }
}

fn watch(dir: &Path) -> JobsWatcher {
    match JobsWatcher::new(dir) {
        Ok(watcher) => watcher,
        Err(err) => panic!("cannot watch {}: {err}", dir.display()),
    }
}

fn write(path: &Path, text: &str) {
    if let Err(err) = std::fs::write(path, text) {
        panic!("cannot write {}: {err}", path.display());
    }
}

fn rename(from: &Path, to: &Path) {
    if let Err(err) = std::fs::rename(from, to) {
        panic!(
            "cannot rename {} to {}: {err}",
            from.display(),
            to.display()
        );
    }
}

async fn assert_changed(watcher: &mut JobsWatcher) {
    match tokio::time::timeout(CHANGE_LIMIT, watcher.changed()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => panic!("expected a change, got an error: {err}"),
        Err(_) => panic!("no change reported within {CHANGE_LIMIT:?}"),
    }
}

async fn assert_no_change(watcher: &mut JobsWatcher) {
    if let Ok(result) = tokio::time::timeout(NO_CHANGE_WAIT, watcher.changed()).await {
        panic!("expected no change, got {result:?}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn writing_a_job_file_is_one_change_even_in_a_burst() {
    let dir = temp_dir();
    let mut watcher = watch(dir.path());
    let job = dir.path().join("hello.yaml");
    for _ in 0..5 {
        write(&job, JOB);
    }
    write(&dir.path().join("other.yml"), JOB);
    assert_changed(&mut watcher).await;
    assert_no_change(&mut watcher).await;
}

#[tokio::test(flavor = "current_thread")]
async fn other_files_are_not_changes() {
    let dir = temp_dir();
    let mut watcher = watch(dir.path());
    write(&dir.path().join("notes.txt"), "x");
    write(&dir.path().join("hello.yaml~"), JOB);
    write(&dir.path().join(".hello.yaml.swp"), "x");
    if let Err(err) = std::fs::create_dir(dir.path().join("archive")) {
        panic!("cannot create a subdirectory: {err}");
    }
    write(&dir.path().join("archive/old.yaml"), JOB);
    assert_no_change(&mut watcher).await;
}

#[tokio::test(flavor = "current_thread")]
async fn renaming_a_temporary_file_to_a_job_file_is_a_change() {
    let dir = temp_dir();
    let tmp = dir.path().join(".hello.yaml.tmp");
    write(&tmp, JOB);
    let mut watcher = watch(dir.path());
    rename(&tmp, &dir.path().join("hello.yaml"));
    assert_changed(&mut watcher).await;
}

#[tokio::test(flavor = "current_thread")]
async fn editor_save_is_one_change() {
    let dir = temp_dir();
    let job = dir.path().join("hello.yaml");
    write(&job, JOB);
    let mut watcher = watch(dir.path());
    // What vim does by default: probe file, swap file, back up by rename, write anew.
    write(&dir.path().join("4913"), "");
    std::fs::remove_file(dir.path().join("4913")).unwrap_or_default();
    write(&dir.path().join(".hello.yaml.swp"), "x");
    rename(&job, &dir.path().join("hello.yaml~"));
    write(&job, JOB);
    std::fs::remove_file(dir.path().join("hello.yaml~")).unwrap_or_default();
    assert_changed(&mut watcher).await;
    assert_no_change(&mut watcher).await;
}

#[tokio::test(flavor = "current_thread")]
async fn deleting_a_job_file_is_a_change() {
    let dir = temp_dir();
    let job = dir.path().join("hello.yaml");
    write(&job, JOB);
    let mut watcher = watch(dir.path());
    if let Err(err) = std::fs::remove_file(&job) {
        panic!("cannot delete {}: {err}", job.display());
    }
    assert_changed(&mut watcher).await;
}

#[tokio::test(flavor = "current_thread")]
async fn moving_a_job_file_away_is_a_change() {
    let dir = temp_dir();
    let outside = temp_dir();
    let job = dir.path().join("hello.yaml");
    write(&job, JOB);
    let mut watcher = watch(dir.path());
    rename(&job, &outside.path().join("hello.yaml"));
    assert_changed(&mut watcher).await;
}

#[tokio::test(flavor = "current_thread")]
async fn each_quiet_separated_edit_is_its_own_change() {
    let dir = temp_dir();
    let mut watcher = watch(dir.path());
    write(&dir.path().join("a.yaml"), JOB);
    assert_changed(&mut watcher).await;
    // `changed` returned, so the directory was quiet for QUIET_PERIOD: this is a new edit.
    write(&dir.path().join("b.yaml"), JOB);
    assert_changed(&mut watcher).await;
    assert_no_change(&mut watcher).await;
}

#[tokio::test(flavor = "current_thread")]
async fn changed_waits_for_quiet_after_the_first_event() {
    let dir = temp_dir();
    let mut watcher = watch(dir.path());
    write(&dir.path().join("a.yaml"), JOB);
    let started = tokio::time::Instant::now();
    assert_changed(&mut watcher).await;
    assert!(started.elapsed() >= QUIET_PERIOD);
}

#[tokio::test(flavor = "current_thread")]
async fn deleting_the_directory_is_gone() {
    let parent = temp_dir();
    let dir = parent.path().join("jobs");
    if let Err(err) = std::fs::create_dir(&dir) {
        panic!("cannot create {}: {err}", dir.display());
    }
    write(&dir.join("hello.yaml"), JOB);
    let mut watcher = watch(&dir);
    if let Err(err) = std::fs::remove_dir_all(&dir) {
        panic!("cannot delete {}: {err}", dir.display());
    }
    let result = tokio::time::timeout(CHANGE_LIMIT, watcher.changed()).await;
    assert!(
        matches!(result, Ok(Err(WatchError::Gone { .. }))),
        "{result:?}"
    );
    // Once gone, always gone: the caller does not spin on a dead watch.
    let again = tokio::time::timeout(CHANGE_LIMIT, watcher.changed()).await;
    assert!(
        matches!(again, Ok(Err(WatchError::Gone { .. }))),
        "{again:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn moving_the_directory_away_is_gone() {
    let parent = temp_dir();
    let dir = parent.path().join("jobs");
    if let Err(err) = std::fs::create_dir(&dir) {
        panic!("cannot create {}: {err}", dir.display());
    }
    let mut watcher = watch(&dir);
    rename(&dir, &parent.path().join("jobs.old"));
    let result = tokio::time::timeout(CHANGE_LIMIT, watcher.changed()).await;
    assert!(
        matches!(result, Ok(Err(WatchError::Gone { .. }))),
        "{result:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn watching_a_missing_directory_is_an_error() {
    let parent = temp_dir();
    let result = JobsWatcher::new(&parent.path().join("missing"));
    assert!(
        matches!(result, Err(WatchError::Setup { .. })),
        "{result:?}"
    );
}

#[test]
fn watching_outside_a_runtime_is_an_error() {
    let dir = temp_dir();
    let result = JobsWatcher::new(dir.path());
    assert!(
        matches!(result, Err(WatchError::Setup { .. })),
        "{result:?}"
    );
}
