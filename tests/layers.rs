//! The dependency rule of ARCHITECTURE.md ("Dependency rule"), checked on the source: each
//! layer imports only the layers below it. The command line is the binary's own module, so
//! the library cannot import it at all; this test keeps the library's own layers pointing one
//! way: `{tui, web} -> source -> runtime -> {view, state} -> store -> {core, jobs, schedule} ->
//! {time, clock}`.

use std::path::{Path, PathBuf};

/// What each room may not name, with `crate::`.
const RULES: &[(&str, &[&str])] = &[
    (
        "time.rs",
        &[
            "clock", "jobs", "schedule", "core", "store", "state", "view", "runtime", "tui",
            "source", "web",
        ],
    ),
    (
        "clock.rs",
        &[
            "jobs", "schedule", "core", "store", "state", "view", "runtime", "tui", "source", "web",
        ],
    ),
    (
        "schedule",
        &[
            "core", "store", "state", "view", "runtime", "tui", "source", "web",
        ],
    ),
    (
        "jobs",
        &[
            "core", "store", "state", "view", "runtime", "tui", "source", "web",
        ],
    ),
    (
        "core",
        &["store", "state", "view", "runtime", "tui", "source", "web"],
    ),
    (
        "store",
        &["state", "view", "runtime", "tui", "source", "web"],
    ),
    ("state.rs", &["view", "runtime", "tui", "source", "web"]),
    ("view.rs", &["runtime", "tui", "source", "web"]),
    ("runtime", &["tui", "source", "web"]),
    ("source.rs", &["tui", "web"]),
    ("tui", &["web"]),
    ("web", &["tui"]),
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            rust_files(&e.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// Test modules (`tests.rs`, `*_tests.rs`) may use the test helpers of any layer.
fn is_test_file(p: &Path) -> bool {
    let name = p.file_name().unwrap().to_string_lossy();
    name == "tests.rs" || name.ends_with("_tests.rs")
}

#[test]
fn every_layer_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for (room, forbidden) in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(room), &mut files);
        assert!(
            !files.is_empty(),
            "no source under src/{room}: update RULES"
        );
        for file in files.iter().filter(|f| !is_test_file(f)) {
            let text = std::fs::read_to_string(file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue; // doc links may point anywhere
                }
                for f in *forbidden {
                    if code.contains(&format!("crate::{f}::"))
                        || code.contains(&format!("crate::{f};"))
                    {
                        broken.push(format!(
                            "{}:{}: {room} names crate::{f}",
                            file.display(),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the dependency rule:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_library_never_names_the_command_line() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let cli = src.join("cli");
    for file in files
        .iter()
        .filter(|f| !f.starts_with(&cli) && !f.ends_with("main.rs"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            !text
                .lines()
                .any(|l| !l.trim_start().starts_with("//") && l.contains("crate::cli")),
            "{} names crate::cli",
            file.display()
        );
    }
}
