//! Sizes and counts as the examples print them, so that every number says what it counts.
//!
//! A size is shown in binary units ([`Size`]: `1.5 KiB`, `3.2 MiB`); a total that a reader may
//! want to add up or compare also gives the exact count of bytes ([`ExactSize`]:
//! `1.5 KiB (1536 bytes)`). Mismatches (a descriptor's size against a stored one) are printed in
//! bytes, where a rounded figure would hide the difference.

use std::fmt;

const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// A size in bytes, in binary units with one decimal (`512 B`, `1.5 KiB`, `2.0 GiB`).
///
/// ```
/// use oci_examples::size::Size;
/// assert_eq!(Size(512).to_string(), "512 B");
/// assert_eq!(Size(1536).to_string(), "1.5 KiB");
/// assert_eq!(Size(3 << 30).to_string(), "3.0 GiB");
/// assert_eq!(Size(u64::MAX).to_string(), "16.0 EiB");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        // Display only: the rounding of a u64 to f64 is far below the decimal shown.
        #[allow(clippy::cast_precision_loss)]
        let mut v = self.0 as f64;
        let mut unit = 0;
        while v >= 1024.0 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        write!(f, "{v:.1} {}", UNITS[unit])
    }
}

/// Why a size given on a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeError {
    input: String,
    why: &'static str,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\"{}\" is not a size: {} (examples: 4194304, 512KiB, 4MiB, 1GiB)",
            crate::escape(&self.input),
            self.why
        )
    }
}

impl std::error::Error for SizeError {}

/// Parses a size as a command line gives it: a whole number of bytes, optionally followed by a
/// binary unit (`B`, `KiB`, `MiB`, `GiB`, `TiB`, or the short `K`, `M`, `G`, `T`; case does not
/// matter; a space between number and unit is allowed). Decimal units (`MB`) are refused
/// rather than guessed.
///
/// ```
/// use oci_examples::size::Size;
/// assert_eq!("4MiB".parse::<Size>().unwrap(), Size(4 << 20));
/// assert_eq!("512 k".parse::<Size>().unwrap(), Size(512 << 10));
/// assert_eq!("1024".parse::<Size>().unwrap(), Size(1024));
/// assert!("4MB".parse::<Size>().is_err());
/// assert!("99999999999GiB".parse::<Size>().is_err()); // beyond u64
/// assert!("-1".parse::<Size>().is_err());
/// ```
impl std::str::FromStr for Size {
    type Err = SizeError;

    fn from_str(s: &str) -> Result<Size, SizeError> {
        let err = |why| SizeError {
            input: s.to_owned(),
            why,
        };
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        if digits.is_empty() {
            return Err(err("it does not start with a number"));
        }
        let n: u64 = digits.parse().map_err(|_| err("the number is too large"))?;
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kib" => 10,
            "m" | "mib" => 20,
            "g" | "gib" => 30,
            "t" | "tib" => 40,
            _ => {
                return Err(err(
                    "unknown unit (binary units only: B, KiB, MiB, GiB, TiB)",
                ));
            }
        };
        n.checked_mul(1u64 << shift)
            .map(Size)
            .ok_or_else(|| err("it does not fit in 64 bits"))
    }
}

/// A size with its exact count of bytes: `1.5 KiB (1536 bytes)`, or `512 bytes` below 1 KiB.
///
/// ```
/// use oci_examples::size::ExactSize;
/// assert_eq!(ExactSize(0).to_string(), "0 bytes");
/// assert_eq!(ExactSize(1).to_string(), "1 byte");
/// assert_eq!(ExactSize(1536).to_string(), "1.5 KiB (1536 bytes)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExactSize(pub u64);

impl fmt::Display for ExactSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("1 byte"),
            n if n < 1024 => write!(f, "{n} bytes"),
            n => write!(f, "{} ({n} bytes)", Size(n)),
        }
    }
}

/// A rate: `bytes` over `seconds`, in binary units per second (`286.5 MiB/s`).
///
/// ```
/// use oci_examples::size::Rate;
/// assert_eq!(Rate { bytes: 3 << 20, seconds: 2.0 }.to_string(), "1.5 MiB/s");
/// assert_eq!(Rate { bytes: 10, seconds: 0.0 }.to_string(), "0 B/s");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Bytes moved.
    pub bytes: u64,
    /// In this many seconds; 0 (nothing measured) shows as a rate of 0.
    pub seconds: f64,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_second = if self.seconds > 0.0 {
            // Display only; the cast saturates.
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let r = (self.bytes as f64 / self.seconds) as u64;
            r
        } else {
            0
        };
        write!(f, "{}/s", Size(per_second))
    }
}

/// `n` things, the noun in the singular for one: `1 blob`, `3 blobs`.
///
/// ```
/// use oci_examples::size::Count;
/// assert_eq!(Count(1, "blob").to_string(), "1 blob");
/// assert_eq!(Count(0, "blob").to_string(), "0 blobs");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub usize, pub &'static str);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.0 == 1 { "" } else { "s" };
        write!(f, "{} {}{s}", self.0, self.1)
    }
}
