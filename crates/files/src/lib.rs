//! Files CallPop keeps for one person: the data folder, the history, the secrets file and the
//! settings file. One helper per mechanism, so every writer gets the same guarantees:
//! - private folders and files are readable by their owner only from the moment they exist;
//! - a replaced file is the old one or the new one after a power cut, never empty or half
//!   written: the new content is synced, renamed over the old, then the folder is synced, and a
//!   failed write leaves no temporary file behind.
//!
//! Platform differences are in `os_unix.rs` and `os_other.rs`, chosen here once.
#![warn(missing_docs)]

use std::io::Write;
use std::path::{Path, PathBuf};

#[cfg_attr(unix, path = "os_unix.rs")]
#[cfg_attr(not(unix), path = "os_other.rs")]
mod os;

/// Who may read a file written by [`write_atomically`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The owner only (secrets, credentials, settings); a file being replaced keeps a
    /// stricter mode it had.
    Private,
    /// As the user's default permissions allow.
    Default,
}

/// Makes every file and folder the process creates from now on readable by its owner only
/// (on Unix, a umask of 077): logs, exports and anything a library writes. Files that exist
/// keep their modes. Called once at the start of each program.
pub fn keep_new_files_private() {
    os::keep_new_files_private();
}

/// Creates a new file readable by the owner only, for a file CallPop writes once, such as a
/// CSV export. An existing file, or a link planted under its name in a shared folder, is an
/// `AlreadyExists` error: nothing already there is written through.
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    os::create_new_private(path)
}

/// Creates the folder (and its parents) readable by the owner only, when it does not exist.
/// An existing folder is left as it is: the user may have chosen its permissions.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    os::create_private_dir_all(dir)
}

/// Creates an empty file readable by the owner only, when it does not exist yet (SQLite then
/// opens it, so the history is never briefly world-readable).
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    match os::create_new_private(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Replaces `path` with `contents`: the old file or the new one survives a power cut, never a
/// mix. A missing parent folder is created (private when `access` is [`Access::Private`]).
pub fn write_atomically(path: &Path, contents: &[u8], access: Access) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        match access {
            Access::Private => create_private_dir(dir)?,
            Access::Default => std::fs::create_dir_all(dir)?,
        }
    }
    let tmp = temporary_path(path);
    let result = (|| {
        let mut file = match access {
            Access::Private => os::create_truncate_private(&tmp)?,
            Access::Default => std::fs::File::create(&tmp)?,
        };
        file.write_all(contents)?;
        if access == Access::Private {
            os::keep_stricter_mode(&file, path)?;
        }
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        // The rename itself is only durable once the folder holding it is synced.
        if let Some(dir) = dir {
            os::sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        // Nothing half-written is left next to the file.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The temporary sibling a replacement is written to: `settings.toml` → `settings.toml.tmp`.
fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_holds_the_new_contents_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("settings.toml");
        write_atomically(&path, b"old", Access::Default).expect("first write");
        write_atomically(&path, b"new", Access::Default).expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("settings.toml")]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secrets.json");
        write_atomically(&path, b"old", Access::Private).expect("write");
        // A folder where the temporary file must go makes the write fail before the rename.
        std::fs::create_dir(temporary_path(&path)).expect("block the temporary");
        std::fs::write(temporary_path(&path).join("x"), b"x").expect("non-empty");
        assert!(write_atomically(&path, b"new", Access::Private).is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
    }

    #[cfg(unix)]
    #[test]
    fn private_files_and_folders_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("a").join("b");
        create_private_dir(&sub).expect("dir");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&sub), 0o700);
        let file = sub.join("callpop.db");
        create_private_file(&file).expect("file");
        create_private_file(&file).expect("existing file is fine");
        assert_eq!(mode(&file), 0o600);
        let secret = dir.path().join("c").join("secrets.json");
        write_atomically(&secret, b"{}", Access::Private).expect("secret");
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(mode(secret.parent().expect("parent")), 0o700);
    }

    #[test]
    fn a_replacement_is_private_and_keeps_a_stricter_mode_an_admin_set() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        let settings = dir.path().join("config.toml");
        std::fs::write(&settings, "a = 1\n").expect("write");
        std::fs::set_permissions(&settings, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_atomically(&settings, b"a = 2\n", Access::Private).expect("replace");
        assert_eq!(mode(&settings), 0o600, "a looser mode is not kept");
        std::fs::set_permissions(&settings, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        write_atomically(&settings, b"a = 3\n", Access::Private).expect("replace read-only");
        assert_eq!(mode(&settings), 0o400, "a stricter mode is kept");
        assert_eq!(std::fs::read_to_string(&settings).expect("read"), "a = 3\n");
        let export = dir.path().join("calls.csv");
        drop(create_private(&export).expect("export"));
        assert_eq!(mode(&export), 0o600);
        let planted = dir.path().join("planted.csv");
        std::os::unix::fs::symlink(&settings, &planted).expect("symlink");
        assert_eq!(
            create_private(&planted).map(drop).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::AlreadyExists),
            "a link under the name is not followed"
        );
        assert_eq!(std::fs::read_to_string(&settings).expect("read"), "a = 3\n");
    }
}
