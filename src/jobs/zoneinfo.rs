//! Finding a time zone by name in the system's tz database: the I/O half of [`Zone`].
//!
//! Zone files are read from `$TZDIR` when it is set, else `/usr/share/zoneinfo` (Debian's
//! `tzdata` package). `UTC` and `Etc/UTC` are built in. A name is a relative path inside that
//! directory (`Europe/Berlin`): a name with a `..` component, a leading `/` or characters
//! other than letters, digits, `/`, `_`, `-` and `+` is refused before any file is opened.

use std::path::PathBuf;

use crate::zone::Zone;

/// The default location of the tz database.
pub const DEFAULT_DIR: &str = "/usr/share/zoneinfo";

/// Why a zone could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// Not a zone name (see the module doc).
    BadName,
    /// No file of that name in the database directory (which exists).
    NotFound {
        /// The database directory searched.
        dir: PathBuf,
    },
    /// The database directory itself is missing (no `tzdata` installed).
    NoDatabase {
        /// The directory that is missing.
        dir: PathBuf,
    },
    /// The file exists but could not be read or is not a valid zone file.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::BadName => f.write_str("not a time zone name"),
            LookupError::NotFound { dir } => {
                write!(f, "no such zone in {}", dir.display())
            }
            LookupError::NoDatabase { dir } => write!(
                f,
                "no time zone database at {} (the `tzdata` package provides it)",
                dir.display()
            ),
            LookupError::Unreadable { path, reason } => {
                write!(f, "{}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for LookupError {}

/// The database directory: `$TZDIR` if set and not empty, else [`DEFAULT_DIR`].
pub fn dir() -> PathBuf {
    match std::env::var_os("TZDIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(DEFAULT_DIR),
    }
}

/// Whether `name` may name a zone file (see the module doc).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && name.len() <= 255
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'))
}

/// Loads zone `name` from the database in [`dir`] (see the module doc).
pub fn load(name: &str) -> Result<Zone, LookupError> {
    load_in(&dir(), name)
}

/// [`load`] from the database in `dir`.
pub fn load_in(dir: &std::path::Path, name: &str) -> Result<Zone, LookupError> {
    if let Some(z) = Zone::builtin(name) {
        return Ok(z);
    }
    if !is_valid_name(name) {
        return Err(LookupError::BadName);
    }
    let dir = dir.to_path_buf();
    let path = dir.join(name);
    let bytes = match read_limited(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(if dir.is_dir() {
                LookupError::NotFound { dir }
            } else {
                LookupError::NoDatabase { dir }
            });
        }
        Err(e) => {
            return Err(LookupError::Unreadable {
                path,
                reason: e.to_string(),
            })
        }
    };
    Zone::from_tzif(name, &bytes).map_err(|e| LookupError::Unreadable { path, reason: e.0 })
}

/// [`load`], reusing a zone already loaded under `name` in this process (no I/O then), else
/// UTC: for displays that redraw often and must show something.
pub fn load_cached_or_utc(name: &str) -> Zone {
    Zone::loaded(name)
        .or_else(|| load(name).ok())
        .unwrap_or(Zone::UTC)
}

/// Reads a regular file of at most [`crate::zone::tzif::MAX_LEN`] bytes.
fn read_limited(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    file.take(crate::zone::tzif::MAX_LEN as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The zone names in the database, sorted, for "did you mean" hints: every file whose name
/// could be a zone and that starts with the TZif magic, except the `posix/` and `right/`
/// copies, `posixrules` and `localtime` (Debian's link to `/etc/localtime`). Empty when the directory cannot be read.
pub fn names() -> Vec<String> {
    names_in(&dir())
}

/// [`names`] of the database in `root`.
pub fn names_in(root: &std::path::Path) -> Vec<String> {
    let root = root.to_path_buf();
    let mut out = vec!["UTC".to_string(), "Etc/UTC".to_string()];
    let mut stack = vec![(root.clone(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(file_name) = e.file_name().into_string() else {
                continue;
            };
            let name = format!("{prefix}{file_name}");
            if !is_valid_name(&name)
                || matches!(
                    name.as_str(),
                    "posix" | "right" | "posixrules" | "localtime"
                )
            {
                continue;
            }
            let path = e.path();
            // Follows symbolic links (Debian's zone aliases are links).
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if out.len() < 10_000 {
                    stack.push((path, format!("{name}/")));
                }
            } else if meta.is_file() && has_magic(&path) {
                out.push(name);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn has_magic(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"TZif"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_any_file_is_opened() {
        for bad in [
            "",
            "/etc/passwd",
            "../etc/passwd",
            "Europe/../../etc/passwd",
            "Europe//Paris",
            "Europe/Paris/",
            "a b",
            "./UTC",
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
            assert_eq!(load(bad), Err(LookupError::BadName), "{bad:?}");
        }
        for good in [
            "Europe/Paris",
            "Etc/GMT+5",
            "Etc/GMT-14",
            "America/Port-au-Prince",
        ] {
            assert!(is_valid_name(good), "{good:?}");
        }
    }

    #[test]
    fn a_missing_zone_says_where_it_looked() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("Europe")).unwrap();
        assert_eq!(
            load_in(tmp.path(), "Europe/Nowhere"),
            Err(LookupError::NotFound {
                dir: tmp.path().to_path_buf()
            })
        );
        let gone = tmp.path().join("gone");
        let e = load_in(&gone, "Europe/Paris").unwrap_err();
        assert_eq!(e, LookupError::NoDatabase { dir: gone.clone() });
        assert!(e.to_string().contains("`tzdata` package"), "{e}");
        // UTC works without any database.
        assert_eq!(load_in(&gone, "UTC"), Ok(Zone::UTC));
    }

    #[test]
    fn a_bad_file_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("Bad"), b"TZif2 but not really").unwrap();
        std::fs::write(tmp.path().join("Text"), b"Europe/Paris\n").unwrap();
        std::fs::create_dir(tmp.path().join("Dir")).unwrap();
        for name in ["Bad", "Text", "Dir"] {
            match load_in(tmp.path(), name) {
                Err(LookupError::Unreadable { path, .. }) => {
                    assert_eq!(path, tmp.path().join(name))
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn names_lists_zone_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        let real = std::fs::read(format!("{DEFAULT_DIR}/Europe/Paris"));
        let Ok(real) = real else {
            return; // no tzdata on this machine: nothing to copy
        };
        std::fs::create_dir_all(tmp.path().join("Europe")).unwrap();
        std::fs::create_dir_all(tmp.path().join("posix/Europe")).unwrap();
        std::fs::write(tmp.path().join("Europe/Paris"), &real).unwrap();
        std::fs::write(tmp.path().join("posix/Europe/Paris"), &real).unwrap();
        std::fs::write(tmp.path().join("zone.tab"), b"# not a zone").unwrap();
        std::fs::write(tmp.path().join("Junk"), b"# not a zone").unwrap();
        assert_eq!(names_in(tmp.path()), ["Etc/UTC", "Europe/Paris", "UTC"]);
        let z = load_in(tmp.path(), "Europe/Paris").unwrap();
        assert_eq!(z.name(), "Europe/Paris");
    }

    #[test]
    fn utc_needs_no_file() {
        assert_eq!(load("UTC"), Ok(Zone::UTC));
        assert_eq!(load("Etc/UTC").map(|z| z.name()), Ok("Etc/UTC"));
    }
}
