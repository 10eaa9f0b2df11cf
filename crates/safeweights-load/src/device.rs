//! Device strings, parsed in one place: the CLI's `--device`, the Python
//! bindings' `device=` and [`Device`] all read them here.
//!
//! A device string is a kind (`cpu`, `cuda`, `mps`, ...), optionally
//! followed by `:N`, a decimal ordinal ([`DeviceName`]). The loader loads
//! onto two of them ([`Device`]): `cpu`, and `cuda` (device 0) or `cuda:N`;
//! there a bare integer `N` also means `cuda:N`, as the reference
//! `safetensors` reads an integer device.

use std::fmt;
use std::str::FromStr;

/// The device kinds a device string may name: those the reference
/// `safetensors` accepts, plus torch's `meta`.
pub const DEVICE_KINDS: [&str; 10] = [
    "cpu", "cuda", "mps", "npu", "xpu", "xla", "mlu", "musa", "hpu", "meta",
];

/// Why a device string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The kind (the part before any `:`) is none of [`DEVICE_KINDS`].
    #[error(
        "unknown device {device:?}: expected one of cpu, cuda, mps, npu, xpu, xla, mlu, musa, hpu, meta, optionally followed by :N"
    )]
    UnknownKind {
        /// The device string.
        device: String,
    },
    /// The ordinal after `:` is not a decimal number.
    #[error(
        "device {device:?}: invalid digit found in string (expected a decimal ordinal after ':')"
    )]
    InvalidOrdinal {
        /// The device string.
        device: String,
    },
    /// The ordinal does not fit (in 64 bits, or in a CUDA ordinal for [`Device`]).
    #[error(
        "device {device:?}: number too large to fit in target type (the ordinal is at most {max})"
    )]
    OrdinalTooLarge {
        /// The device string.
        device: String,
        /// The largest ordinal accepted there.
        max: u64,
    },
    /// A device the loader does not load onto.
    #[error("cannot load onto device {device:?}: expected cpu, cuda, cuda:N or N (CUDA device N)")]
    NotLoadable {
        /// The device string.
        device: String,
    },
}

impl DeviceError {
    /// The device string refused.
    pub fn device(&self) -> &str {
        match self {
            DeviceError::UnknownKind { device }
            | DeviceError::InvalidOrdinal { device }
            | DeviceError::OrdinalTooLarge { device, .. }
            | DeviceError::NotLoadable { device } => device,
        }
    }
}

/// A parsed device string: a kind of [`DEVICE_KINDS`] and an optional
/// ordinal. Displayed normalised: `cuda:01` reads as `cuda:1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceName {
    kind: &'static str,
    index: Option<u64>,
}

impl DeviceName {
    /// CUDA device `index` (what an integer device means).
    pub fn cuda(index: u64) -> Self {
        DeviceName {
            kind: "cuda",
            index: Some(index),
        }
    }

    /// The kind: one of [`DEVICE_KINDS`].
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The ordinal, when the string named one.
    pub fn index(&self) -> Option<u64> {
        self.index
    }
}

impl FromStr for DeviceName {
    type Err = DeviceError;

    /// `kind` or `kind:N` (`N` decimal digits only; the first `:` splits).
    fn from_str(s: &str) -> Result<Self, DeviceError> {
        let (kind, index) = match s.split_once(':') {
            Some((kind, index)) => (kind, Some(index)),
            None => (s, None),
        };
        let Some(&kind) = DEVICE_KINDS.iter().find(|&&k| k == kind) else {
            return Err(DeviceError::UnknownKind {
                device: s.to_owned(),
            });
        };
        let index = index.map(|digits| parse_ordinal(s, digits)).transpose()?;
        Ok(DeviceName { kind, index })
    }
}

/// `digits` (the ordinal of `device`) as a number: decimal digits only.
fn parse_ordinal(device: &str, digits: &str) -> Result<u64, DeviceError> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DeviceError::InvalidOrdinal {
            device: device.to_owned(),
        });
    }
    digits.parse().map_err(|_| DeviceError::OrdinalTooLarge {
        device: device.to_owned(),
        max: u64::MAX,
    })
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(n) => write!(f, "{}:{n}", self.kind),
            None => f.write_str(self.kind),
        }
    }
}

/// Where to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// Host memory.
    Cpu,
    /// A CUDA device ordinal.
    Cuda(i32),
}

impl FromStr for Device {
    type Err = DeviceError;

    /// `cpu`, `cuda` (device 0), `cuda:N`, or `N` alone (CUDA device `N`).
    fn from_str(s: &str) -> Result<Self, DeviceError> {
        let name = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            DeviceName::cuda(parse_ordinal(s, s)?)
        } else {
            s.parse::<DeviceName>().map_err(|e| match e {
                DeviceError::UnknownKind { device } => DeviceError::NotLoadable { device },
                e => e,
            })?
        };
        match (name.kind, name.index) {
            ("cpu", None) => Ok(Device::Cpu),
            ("cuda", index) => {
                let n = index.unwrap_or(0);
                i32::try_from(n)
                    .map(Device::Cuda)
                    .map_err(|_| DeviceError::OrdinalTooLarge {
                        device: s.to_owned(),
                        max: i32::MAX as u64,
                    })
            }
            _ => Err(DeviceError::NotLoadable {
                device: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn loader_devices() {
        assert_eq!("cpu".parse(), Ok(Device::Cpu));
        assert_eq!("cuda".parse(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(Device::Cuda(3)));
        assert_eq!("cuda:03".parse(), Ok(Device::Cuda(3)));
        assert_eq!("2".parse(), Ok(Device::Cuda(2)));
        for s in ["cuda:3", "cpu", "cuda:0"] {
            assert_eq!(s.parse::<Device>().unwrap().to_string(), s);
        }
        for bad in [
            "", "gpu", "mps", "cpu:0", "meta", "-1", "cuda:-1", "cuda:+1", "cuda:",
        ] {
            assert!(bad.parse::<Device>().is_err(), "{bad}");
        }
        assert!(matches!(
            "cuda:x".parse::<Device>(),
            Err(DeviceError::InvalidOrdinal { .. })
        ));
        assert!(matches!(
            "cuda:2147483648".parse::<Device>(),
            Err(DeviceError::OrdinalTooLarge { max, .. }) if max == i32::MAX as u64
        ));
        assert_eq!("2147483647".parse::<Device>(), Ok(Device::Cuda(i32::MAX)));
        assert!(matches!(
            "quantum".parse::<Device>(),
            Err(DeviceError::NotLoadable { .. })
        ));
    }

    #[test]
    fn device_names() {
        let name = |s: &str| s.parse::<DeviceName>().map(|d| d.to_string());
        for kind in DEVICE_KINDS {
            assert_eq!(name(kind).as_deref(), Ok(kind));
            assert_eq!(name(&format!("{kind}:07")), Ok(format!("{kind}:7")));
        }
        assert_eq!(name("cuda:1"), Ok("cuda:1".to_owned()));
        assert_eq!(
            name("foo"),
            Err(DeviceError::UnknownKind {
                device: "foo".into()
            })
        );
        // An integer string is no device name (an integer object is: `DeviceName::cuda`).
        assert!(matches!(name("1"), Err(DeviceError::UnknownKind { .. })));
        for bad in [
            "cuda:x", "cuda:", "cuda:1:2", "cuda:+1", "cuda: 1", "cuda:١",
        ] {
            assert!(
                matches!(name(bad), Err(DeviceError::InvalidOrdinal { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            name("cuda:99999999999999999999"),
            Err(DeviceError::OrdinalTooLarge { .. })
        ));
        assert_eq!(DeviceName::cuda(4).to_string(), "cuda:4");
        let d: DeviceName = "xpu:2".parse().unwrap();
        assert_eq!((d.kind(), d.index()), ("xpu", Some(2)));
    }
}
