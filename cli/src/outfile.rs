//! Opening an `-o` output, the one rule for `run` and `convert`: a regular file (or a new
//! one) is written under a temporary name and renamed into place when complete, so an
//! interrupted job leaves no file that looks finished; anything else a path can name is
//! written through, never replaced.
//!
//! - A device (`/dev/null`, `/dev/stdout`), FIFO or socket is opened and written directly:
//!   renaming a file over it would replace the node (as root, `/dev/null` becomes a regular
//!   file) and a FIFO's reader would wait forever.
//! - A symlink is followed: the file it points to is replaced and the link stays. A link to
//!   nothing is refused (writing through it would create a file somewhere else).
//! - The temporary file is created exclusively (`O_EXCL`, a random name, never through a
//!   link) in the target's own directory, so the rename stays on one file system and a link
//!   planted at a predictable name in a shared directory such as /tmp cannot redirect it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// An output being written: through to a special file, or under a temporary name.
pub enum OutFile {
    Through {
        file: File,
        path: PathBuf,
    },
    Replace {
        tmp: tempfile::NamedTempFile,
        target: PathBuf,
    },
}

impl OutFile {
    /// Open `path` for writing by the rules above. `force`: whether an existing regular file
    /// may be replaced (`run` always may; `convert` asks for `--force`).
    pub fn create(path: &Path, force: bool) -> Result<OutFile> {
        if path.as_os_str().to_string_lossy().ends_with('/') || path.is_dir() {
            bail!("{} is a directory; give the output file's path", path.display());
        }
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        // Followed through links: what a write would reach, and the mode a replaced file keeps.
        let (target, mode) = match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => bail!("{} is a directory; give the output file's path", path.display()),
            Ok(m) if !m.is_file() => {
                // A device, FIFO or socket (`/dev/stdout` may be a pipe with no path of its
                // own): write through it, without truncating; a FIFO blocks here until its
                // reader opens it, as a shell redirection would.
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| format!("cannot open {} for writing", path.display()))?;
                return Ok(OutFile::Through {
                    file,
                    path: path.to_path_buf(),
                });
            }
            Ok(_) if !force => bail!("{} exists (pass --force to overwrite)", path.display()),
            Ok(m) if is_link => (
                std::fs::canonicalize(path)
                    .with_context(|| format!("cannot resolve the symbolic link {}", path.display()))?,
                Some(m.permissions()),
            ),
            Ok(m) => (path.to_path_buf(), Some(m.permissions())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && is_link => {
                bail!(
                    "{} is a symbolic link to nothing: give its target or another path",
                    path.display()
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (path.to_path_buf(), None),
            Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
        };
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            bail!("{}: the directory {} does not exist", path.display(), dir.display());
        }
        let name = target.file_name().unwrap_or_default().to_string_lossy().into_owned();
        // Replacing a file keeps its mode; a new one gets the usual 0666 less the umask
        // (tempfile's own default, 0600, would surprise whoever reads the output next).
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".partial");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(mode.unwrap_or_else(|| std::fs::Permissions::from_mode(0o666)));
        }
        #[cfg(not(unix))]
        let _ = mode;
        let tmp = builder
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        Ok(OutFile::Replace { tmp, target })
    }

    /// Write `bytes` as the whole of `path`, by the same rules.
    pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
        let mut out = OutFile::create(path, true)?;
        let shown = out.shown();
        match &mut out {
            OutFile::Through { file, .. } => file.write_all(bytes),
            OutFile::Replace { tmp, .. } => tmp.write_all(bytes),
        }
        .with_context(|| format!("writing {shown}"))?;
        out.commit()
    }

    /// The open file (a handle to the temporary file while replacing).
    pub fn file(&self) -> &File {
        match self {
            OutFile::Through { file, .. } => file,
            OutFile::Replace { tmp, .. } => tmp.as_file(),
        }
    }

    /// The name to put in error messages about writing.
    pub fn shown(&self) -> String {
        match self {
            OutFile::Through { path, .. } => path.display().to_string(),
            OutFile::Replace { tmp, .. } => tmp.path().display().to_string(),
        }
    }

    /// Finish: flush a special file; sync a temporary file and rename it over its target.
    pub fn commit(self) -> Result<()> {
        match self {
            OutFile::Through { mut file, path } => file.flush().with_context(|| format!("writing {}", path.display())),
            OutFile::Replace { tmp, target } => {
                let shown = tmp.path().display().to_string();
                tmp.as_file().sync_all().with_context(|| format!("writing {shown}"))?;
                tmp.persist(&target)
                    .map_err(|e| e.error)
                    .with_context(|| format!("renaming {shown} to {}", target.display()))?;
                Ok(())
            }
        }
    }

    /// Give up: a temporary file is removed (dropping it does that); a special file is left.
    pub fn abandon(self) {}
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn write(path: &Path, force: bool, bytes: &[u8]) -> Result<()> {
        let out = OutFile::create(path, force)?;
        out.file().write_all(bytes)?;
        out.commit()
    }

    #[test]
    fn a_regular_file_is_replaced_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        std::fs::write(&path, b"old").unwrap();
        assert!(write(&path, false, b"new").is_err(), "an existing file needs force");
        write(&path, true, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.bin"]);
    }

    #[test]
    fn a_symlink_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.txt");
        std::fs::write(&real, b"old").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write(&link, true, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere/x"), &dangling).unwrap();
        let e = OutFile::create(&dangling, true).err().unwrap().to_string();
        assert!(e.contains("symbolic link to nothing"), "{e}");
    }

    #[test]
    fn a_device_is_written_through_not_replaced() {
        let out = OutFile::create(Path::new("/dev/null"), true).unwrap();
        assert!(matches!(out, OutFile::Through { .. }));
        out.file().write_all(b"x").unwrap();
        out.commit().unwrap();
        let m = std::fs::metadata("/dev/null").unwrap();
        assert!(!m.is_file());
    }

    #[test]
    fn a_planted_link_at_a_guessable_name_is_not_followed() {
        // The old names were `.NAME.partial-PID` and `OUT.tmp`: plant links at both and at
        // every name a guess could use; the victim file must stay as it was.
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("out.npy");
        for planted in [
            format!(".out.npy.partial-{}", std::process::id()),
            "out.npy.tmp".to_string(),
        ] {
            std::os::unix::fs::symlink(&victim, dir.path().join(planted)).unwrap();
        }
        write(&path, true, b"result").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&path).unwrap(), b"result");
    }

    #[test]
    fn a_new_file_gets_the_umask_mode_and_a_replaced_one_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("kept");
        std::fs::write(&kept, b"old").unwrap();
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o640)).unwrap();
        write(&kept, true, b"new").unwrap();
        assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o640);
        let fresh = dir.path().join("fresh");
        write(&fresh, true, b"new").unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_ne!(mode, 0o600, "tempfile's private default leaked into the output");
    }
}
