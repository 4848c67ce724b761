//! Files named in configuration (helio.yaml itself, plugin components),
//! read with bounds: only regular files, and never more than a limit, so a
//! path such as `/dev/zero` or a FIFO cannot hang `validate`, start or a
//! reload, or exhaust memory.

use std::io::{self, Read};
use std::path::Path;

/// Reads the regular file at `path` (symlinks followed) whole, if it holds
/// at most `max_bytes`.
pub fn read_regular(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    // Looked at before opening: opening a FIFO waits for a writer.
    regular(&std::fs::metadata(path)?)?;
    let file = std::fs::File::open(path)?;
    let metadata = file.metadata()?;
    regular(&metadata)?;
    if metadata.len() > max_bytes {
        return Err(too_large(max_bytes));
    }
    // The file may grow between the check and the read: read one byte past
    // the limit to tell.
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(max_bytes));
    }
    Ok(bytes)
}

fn regular(metadata: &std::fs::Metadata) -> io::Result<()> {
    if metadata.is_file() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file (it is {})", kind(&metadata.file_type())),
    ))
}

fn too_large(max_bytes: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("larger than the {} MiB limit", max_bytes >> 20),
    )
}

fn kind(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = std::env::temp_dir().join(format!("helio-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("small");
        std::fs::write(&file, b"hello").expect("write");
        assert_eq!(read_regular(&file, 5).expect("read"), b"hello");
        let error = read_regular(&file, 4).expect_err("too large");
        assert!(error.to_string().contains("limit"), "{error}");
        let error = read_regular(Path::new("/dev/zero"), 1 << 20).expect_err("device");
        assert!(error.to_string().contains("character device"), "{error}");
        let error = read_regular(&dir, 1 << 20).expect_err("dir");
        assert!(error.to_string().contains("directory"), "{error}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
