//! Writing blobs (with the `std` feature): the inverse of [`Blob::parse`](crate::blob::Blob::parse),
//! kept beside it so that the two cannot drift. The host CLI's `quantize` is a thin wrapper.

use std::vec::Vec;

#[allow(unused_imports)]
use crate::blob::tensors;
use crate::blob::{
    align_up, tensors_in, DType, Header, NumberFormat, TensorEntry, TensorId, CRC32, MAGIC,
    PREFIX_LEN, TRAILER_LEN, VERSION,
};
use crate::{Config, Error};

/// Encodes a vocabulary as the blob stores it: per token, one length byte then UTF-8 text.
/// A token longer than 255 bytes is [`Error::BadVocab`].
pub fn encode_vocab<S: AsRef<str>>(vocab: &[S]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    for token in vocab {
        let text = token.as_ref().as_bytes();
        let len = u8::try_from(text.len()).map_err(|_| Error::BadVocab)?;
        out.push(len);
        out.extend_from_slice(text);
    }
    Ok(out)
}

/// The values of one tensor handed to [`write_blob`], in the element type the format gives it.
#[derive(Clone, Copy, Debug)]
pub enum TensorData<'t> {
    /// `f32` elements.
    F32(&'t [f32]),
    /// `i8` elements.
    I8(&'t [i8]),
    /// `i32` elements.
    I32(&'t [i32]),
}

impl TensorData<'_> {
    fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::I8(_) => DType::I8,
            TensorData::I32(_) => DType::I32,
        }
    }

    fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::I32(v) => v.len(),
        }
    }

    fn extend(&self, out: &mut Vec<u8>) {
        match self {
            TensorData::F32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::I8(v) => out.extend(v.iter().map(|&x| x as u8)),
            TensorData::I32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
    }
}

/// Writes an `f32` blob. `tensor` returns each tensor of [`tensors`]`(config)` by id; its
/// length must match the config. `vocab`, if given, must have `d_vocab` entries.
pub fn write_f32<'t, S: AsRef<str>>(
    config: &Config,
    vocab: Option<&[S]>,
    mut tensor: impl FnMut(TensorId) -> &'t [f32],
) -> Result<Vec<u8>, Error> {
    write_blob(config, NumberFormat::F32, vocab, |id| {
        TensorData::F32(tensor(id))
    })
}

/// Writes a blob of any number format. `tensor` returns each tensor of
/// [`tensors_in`]`(config, format)` by id, in the element type the format gives it
/// (a wrong type is [`Error::UnexpectedTensor`]); its length must match.
pub fn write_blob<'t, S: AsRef<str>>(
    config: &Config,
    format: NumberFormat,
    vocab: Option<&[S]>,
    mut tensor: impl FnMut(TensorId) -> TensorData<'t>,
) -> Result<Vec<u8>, Error> {
    config.check()?;
    let vocab_bytes = match vocab {
        Some(v) if v.len() != config.d_vocab => return Err(Error::BadVocab),
        Some(v) => Some(encode_vocab(v)?),
        None => None,
    };
    let header = Header {
        config: *config,
        format: format.code(),
        vocab: vocab_bytes.as_deref(),
    };
    let mut head = postcard::to_allocvec(&header).map_err(|_| Error::Header)?;
    let entries: Vec<(TensorId, usize, DType)> = tensors_in(config, format).collect();
    head.extend(postcard::to_allocvec(&(entries.len() as u32)).map_err(|_| Error::Header)?);
    let mut data = Vec::new();
    for &(id, len, dtype) in &entries {
        let values = tensor(id);
        if values.dtype() != dtype {
            return Err(Error::UnexpectedTensor { expected: id });
        }
        if values.len() != len {
            return Err(Error::TensorLength {
                tensor: id,
                expected: len,
                found: values.len(),
            });
        }
        let entry = TensorEntry {
            kind: id.kind as u8,
            layer: id.layer,
            dtype: dtype.code(),
            offset: data.len() as u32,
            len: len as u32,
        };
        head.extend(postcard::to_allocvec(&entry).map_err(|_| Error::Header)?);
        values.extend(&mut data);
        data.resize(align_up(data.len()), 0);
    }
    let data_start = align_up(PREFIX_LEN + head.len());
    let file_len = data_start + data.len() + TRAILER_LEN;
    let mut out = Vec::with_capacity(file_len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&(file_len as u32).to_le_bytes());
    out.extend_from_slice(&head);
    out.resize(data_start, 0);
    out.extend_from_slice(&data);
    let crc = CRC32.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Bytes held in 16-byte aligned storage, so a blob read from a file can be loaded in place.
#[derive(Clone, Debug, Default)]
pub struct AlignedBytes {
    words: Vec<u128>,
    len: usize,
}

impl AlignedBytes {
    /// Copies `bytes` into aligned storage.
    pub fn new(bytes: &[u8]) -> Self {
        let mut words = std::vec![0u128; bytes.len().div_ceil(16)];
        let buf: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        buf[..bytes.len()].copy_from_slice(bytes);
        AlignedBytes {
            words,
            len: bytes.len(),
        }
    }

    /// The bytes, starting at a 16-byte aligned address.
    pub fn as_bytes(&self) -> &[u8] {
        let buf: &[u8] = bytemuck::cast_slice(&self.words);
        &buf[..self.len]
    }
}
