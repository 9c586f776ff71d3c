//! Every file a command writes is written whole or not at all: into a temporary file in the
//! same directory, then renamed over the destination (atomic on one file system). A failure
//! half way leaves the old file, or none, never a torn one. And no command writes over one of
//! the files it reads.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Writes `bytes` to `path` atomically, naming the file on failure.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    write_atomic(path, bytes.as_ref()).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_through(path, |tmp| tmp.as_file().write_all(bytes))
}

/// Writes named `f32` tensors (name, shape, values) to a safetensors file, atomically and
/// streamed: the values go to the file as they lie in memory, with no second copy.
pub fn write_f32_safetensors(path: &Path, tensors: &[(&str, &[usize], &[f32])]) -> Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    use std::borrow::Cow;
    // safetensors is little-endian, like every host tinylens runs on; elsewhere, convert.
    let data: Vec<Cow<'_, [u8]>> = tensors
        .iter()
        .map(|&(_, _, v)| {
            if cfg!(target_endian = "little") {
                Cow::Borrowed(bytemuck::cast_slice(v))
            } else {
                Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
            }
        })
        .collect();
    let views = tensors
        .iter()
        .zip(&data)
        .map(|((name, shape, _), d)| Ok((*name, TensorView::new(Dtype::F32, shape.to_vec(), d)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .with_context(|| format!("cannot write {}", path.display()))?;
    write_through(path, |tmp| {
        safetensors::serialize_to_file(views, None, tmp.path()).map_err(std::io::Error::other)
    })
    .with_context(|| format!("cannot write {}", path.display()))
}

/// Creates a temporary file beside `path`, lets `fill` write it, syncs it and renames it over
/// `path`. On any error the temporary file is removed and `path` is untouched.
fn write_through(
    path: &Path,
    fill: impl FnOnce(&tempfile::NamedTempFile) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tinylens-").suffix(".part");
    #[cfg(unix)]
    builder.permissions(permissions_for(path));
    let tmp = builder.tempfile_in(dir)?;
    fill(&tmp)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The permissions a written file gets: those of the file it replaces, or, for a new file,
/// what any program's new file gets (read and write for all, less the umask), not the
/// owner-only mode of a temporary file.
#[cfg(unix)]
fn permissions_for(path: &Path) -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(old) => old.permissions(),
        Err(_) => std::fs::Permissions::from_mode(0o666),
    }
}

/// Refuses to write `output` when it is one of `inputs` (the same file, under any name).
pub fn refuse_overwrite(output: &Path, inputs: &[&Path]) -> Result<()> {
    let Ok(out) = output.canonicalize() else {
        // The output does not exist yet, so it is none of the inputs.
        return Ok(());
    };
    for input in inputs {
        if input.canonicalize().is_ok_and(|i| i == out) {
            bail!(
                "refusing to write {} over its own input {}: choose another output",
                output.display(),
                input.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_replaces_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write(&path, b"first").unwrap();
        write(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_new_file_gets_the_usual_mode_and_a_replaced_one_keeps_its_own() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let plain = dir.path().join("plain.bin");
        std::fs::write(&plain, b"x").unwrap();
        let ours = dir.path().join("ours.bin");
        write(&ours, b"x").unwrap();
        assert_eq!(mode(&ours), mode(&plain), "as std::fs::write makes it");
        std::fs::set_permissions(&ours, std::fs::Permissions::from_mode(0o640)).unwrap();
        write(&ours, b"y").unwrap();
        assert_eq!(mode(&ours), 0o640);
    }

    #[test]
    fn a_missing_directory_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/out.bin");
        let err = write(&path, b"x").unwrap_err();
        assert!(format!("{err:#}").contains("cannot write"), "{err:#}");
        assert!(!path.exists());
    }

    #[test]
    fn refuses_an_output_that_is_an_input() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("model.tlb");
        std::fs::write(&input, b"blob").unwrap();
        let same = dir.path().join(".").join("model.tlb");
        let err = refuse_overwrite(&same, &[&input]).unwrap_err();
        assert!(format!("{err}").contains("over its own input"), "{err}");
        assert!(refuse_overwrite(&dir.path().join("other.tlb"), &[&input]).is_ok());
    }
}
