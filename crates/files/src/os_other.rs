//! Windows and other non-Unix systems: a user's profile folders are already private to them
//! (their ACLs), so files are created plainly. Folders cannot be opened to be synced there;
//! NTFS journals the rename itself. Not compiled on the Linux build machine: see
//! docs/PLATFORMS.md.

use std::fs::{File, OpenOptions};
use std::path::Path;

pub(crate) fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

pub(crate) fn create_new_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

pub(crate) fn create_truncate_private(path: &Path) -> std::io::Result<File> {
    File::create(path)
}

pub(crate) fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

pub(crate) fn keep_stricter_mode(_new: &File, _old: &Path) -> std::io::Result<()> {
    Ok(())
}

pub(crate) fn keep_new_files_private() {}
