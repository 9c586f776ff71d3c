//! Number formats and Cargo features: a blob whose format this build does not run is refused
//! with `UnsupportedFormat`, naming the format and the feature. `scripts/test.sh` also runs
//! this file with `--no-default-features --features f32`, where the other formats are off.

use tinylens::blob::{Blob, NumberFormat, CRC32};
use tinylens::testing::{blob_for, tiny_config};
use tinylens::{Error, Model, Norm, PosEmbed};

/// A valid f32 blob with its header's format code replaced by `code`.
fn with_format(code: u8) -> Vec<u8> {
    let cfg = tiny_config(Norm::None, PosEmbed::None);
    let mut bytes = blob_for(&cfg).as_bytes().to_vec();
    // Prefix (20 bytes), then the config: 6 one-byte varints, norm 0, pos 2; then the format.
    assert_eq!(bytes[20 + 8], 0, "format byte of an f32 blob");
    bytes[20 + 8] = code;
    let n = bytes.len();
    let crc = CRC32.checksum(&bytes[..n - 4]);
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn load(bytes: &[u8]) -> Result<(), Error> {
    let aligned = tinylens::writer::AlignedBytes::new(bytes);
    Model::from_blob(aligned.as_bytes()).map(|_| ())
}

#[test]
fn unknown_format_codes_are_refused() {
    let err = load(&with_format(9)).unwrap_err();
    assert_eq!(err, Error::UnsupportedFormat(9));
    assert_eq!(
        err.to_string(),
        "number format 9 is not supported by this build of the kernel"
    );
}

#[test]
fn formats_not_built_are_refused_by_name() {
    for format in NumberFormat::ALL {
        let bytes = with_format(format.code() as u8);
        let parsed = Blob::parse(&bytes);
        if format.is_built() {
            // Built: the format is accepted, and the directory (of an f32 blob) is what fails.
            assert!(
                !matches!(parsed, Err(Error::UnsupportedFormat(_))) || format == NumberFormat::F32
            );
        } else {
            let err = load(&bytes).unwrap_err();
            assert_eq!(err, Error::UnsupportedFormat(format.code()));
            let msg = err.to_string();
            assert!(
                msg.contains(format.name()) && msg.contains(format.feature()),
                "{msg}"
            );
        }
    }
}

#[cfg(not(feature = "int"))]
#[test]
fn a_build_without_int_refuses_int_blobs() {
    let err = load(&with_format(2)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "number format 2 (int) is not supported by this build of the kernel (enable its Cargo feature `int`)"
    );
}
