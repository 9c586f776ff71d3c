//! The flash and RAM of a chip, read from its `memory.x` (the linker script cortex-m-rt and
//! riscv-rt include), so that the build checks a model against the same figures the linker
//! places it in.

use crate::refusal::Refusal;

/// Bytes of the `FLASH` and `RAM` regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// `LENGTH` of `FLASH`.
    pub flash: usize,
    /// `LENGTH` of `RAM`.
    pub ram: usize,
}

impl Memory {
    /// Reads the lengths from the `MEMORY` block of a `memory.x`.
    pub fn parse(script: &str) -> Result<Memory, Refusal> {
        Ok(Memory {
            flash: region_length(script, "FLASH").ok_or(Refusal::Memory("FLASH"))?,
            ram: region_length(script, "RAM").ok_or(Refusal::Memory("RAM"))?,
        })
    }
}

/// The `LENGTH` of the region `name`, from a line `NAME : ORIGIN = ..., LENGTH = ...`.
fn region_length(script: &str, name: &str) -> Option<usize> {
    script.lines().find_map(|line| {
        let rest = line.trim().strip_prefix(name)?;
        let rest = rest.trim_start().strip_prefix(':')?;
        let (_, length) = rest.split_once("LENGTH")?;
        length.trim_start().strip_prefix('=').and_then(expression)
    })
}

/// A length expression: numbers (decimal or `0x` hex, optionally `K` or `M`) joined by `+` and
/// `-`, as in `2048K - 0x100`.
fn expression(text: &str) -> Option<usize> {
    let (mut total, mut sign, mut rest) = (0i64, 1i64, text.trim());
    loop {
        let end = rest.find(['+', '-']).unwrap_or(rest.len());
        total += sign * number(rest[..end].trim())?;
        if end == rest.len() {
            break;
        }
        sign = if rest[end..].starts_with('-') { -1 } else { 1 };
        rest = &rest[end + 1..];
    }
    usize::try_from(total).ok()
}

/// One number: `256K`, `4M`, `0x100`, `1024`.
fn number(word: &str) -> Option<i64> {
    let (digits, scale) = match word.as_bytes().last()? {
        b'K' | b'k' => (&word[..word.len() - 1], 1024),
        b'M' | b'm' => (&word[..word.len() - 1], 1024 * 1024),
        _ => (word, 1),
    };
    let value = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => i64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    value.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_examples_memory_scripts() {
        let cases = [
            ("qemu-m0", 256 * 1024, 16 * 1024),
            ("qemu-m4f", 4 << 20, 4 << 20),
            ("board-rp2040", 2048 * 1024 - 0x100, 256 * 1024),
            ("board-gd32vf103", 128 * 1024, 32 * 1024),
        ];
        for (package, flash, ram) in cases {
            let path = format!("{}/../{package}/memory.x", env!("CARGO_MANIFEST_DIR"));
            let script = std::fs::read_to_string(&path).unwrap();
            assert_eq!(Memory::parse(&script), Ok(Memory { flash, ram }), "{path}");
        }
    }

    #[test]
    fn refuses_a_script_without_a_region() {
        let script = "MEMORY\n{\n  FLASH : ORIGIN = 0, LENGTH = 64K\n}\n";
        assert_eq!(Memory::parse(script), Err(Refusal::Memory("RAM")));
        assert_eq!(expression("64K - 0x10"), Some(65520));
        assert_eq!(expression("12Q"), None);
    }
}
