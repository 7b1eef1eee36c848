//! Unix: owner-only modes are set when a file or folder is created; a replacement keeps a
//! stricter mode the old file had.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub(crate) fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

pub(crate) fn create_new_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

pub(crate) fn create_truncate_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Gives `new` (the replacement of `old`) the old file's mode when that was stricter than
/// owner read-write: an admin who made the settings read-only keeps them so.
pub(crate) fn keep_stricter_mode(new: &File, old: &Path) -> std::io::Result<()> {
    let Ok(meta) = std::fs::metadata(old) else {
        return Ok(());
    };
    let mode = meta.permissions().mode() & 0o600;
    if mode != 0o600 {
        new.set_permissions(Permissions::from_mode(mode))?;
    }
    Ok(())
}

pub(crate) fn keep_new_files_private() {
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}
