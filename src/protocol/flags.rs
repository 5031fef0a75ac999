//! Action (`SMFIF_*`) and protocol-step (`SMFIP_*`) bit sets of the option negotiation.
//!
//! Both print as `|`-joined names, the vocabulary the original's logs and tools use, and
//! parse back from that text.

use std::fmt;

/// Declares a `bitflags` set whose bits also have the text names of the logs and tools,
/// with `Display` (names joined by `|`, unknown bits in hex), `Debug` and `parse`.
macro_rules! named_flags {
    ($(#[$($doc:tt)*])* $name:ident { $($(#[$($bdoc:tt)*])* $flag:ident = $value:expr, $text:literal;)* }) => {
        bitflags::bitflags! {
            $(#[$($doc)*])*
            #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
            pub struct $name: u32 {
                $($(#[$($bdoc)*])* const $flag = $value;)*
            }
        }

        impl $name {
            /// Every named bit with its name, in bit order.
            pub const NAMED: &'static [($name, &'static str)] = &[$(($name::$flag, $text)),*];

            /// Parses `name|name|...`; `none` or an empty string is the empty set, and
            /// a hexadecimal `0x...` number is taken as raw bits.
            pub fn parse(text: &str) -> Result<$name, FlagsError> {
                parse_names(text, $name::NAMED.iter().map(|(flag, name)| (flag.bits(), *name)))
                    .map($name::from_bits_retain)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let named = $name::NAMED.iter().map(|(flag, name)| (flag.bits(), *name));
                write_names(f, self.bits(), named)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(0x{:x}: {})", stringify!($name), self.bits(), self)
            }
        }
    };
}

/// Why a text is not a set of flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagsError {
    #[error("{0:?} is not a hexadecimal number")]
    NotHex(String),
    /// `known`: every name of the set, joined by `, `.
    #[error("unknown flag {flag:?} (known: {known})")]
    Unknown { flag: String, known: String },
}

fn parse_names<'a>(
    text: &str,
    named: impl Iterator<Item = (u32, &'a str)> + Clone,
) -> Result<u32, FlagsError> {
    let text = text.trim();
    if text.is_empty() || text == "none" {
        return Ok(0);
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return u32::from_str_radix(hex, 16).map_err(|_| FlagsError::NotHex(text.to_string()));
    }
    let mut bits = 0;
    for part in text.split('|') {
        let part = part.trim();
        match named.clone().find(|(_, name)| *name == part) {
            Some((flag, _)) => bits |= flag,
            None => {
                let known = named.map(|(_, name)| name).collect::<Vec<_>>().join(", ");
                return Err(FlagsError::Unknown { flag: part.to_string(), known });
            }
        }
    }
    Ok(bits)
}

fn write_names<'a>(
    f: &mut fmt::Formatter<'_>,
    bits: u32,
    named: impl Iterator<Item = (u32, &'a str)>,
) -> fmt::Result {
    if bits == 0 {
        return f.write_str("none");
    }
    let mut rest = bits;
    let mut separator = "";
    for (flag, name) in named {
        if bits & flag != 0 {
            write!(f, "{separator}{name}")?;
            separator = "|";
            rest &= !flag;
        }
    }
    if rest != 0 {
        write!(f, "{separator}0x{rest:x}")?;
    }
    Ok(())
}

named_flags! {
    /// What a milter may do at end-of-message (`SMFIF_*`).
    Actions {
        /// Add and insert headers.
        ADD_HEADERS = 0x01, "add-headers";
        CHANGE_BODY = 0x02, "change-body";
        ADD_RCPT = 0x04, "add-envelope-recipient";
        DELETE_RCPT = 0x08, "delete-envelope-recipient";
        CHANGE_HEADERS = 0x10, "change-headers";
        QUARANTINE = 0x20, "quarantine";
        CHANGE_FROM = 0x40, "change-envelope-from";
        ADD_RCPT_WITH_ARGS = 0x80, "add-envelope-recipient-with-parameters";
        SET_SYMBOL_LIST = 0x100, "set-symbol-list";
    }
}

impl Actions {
    /// Everything protocol version 6 defines (`SMFI_CURR_ACTS`).
    pub const ALL: Self = Self::all();
    /// What libmilter assumes when an MTA offers no actions at all (`SMFI_V1_ACTS`).
    pub const V1: Self =
        Self::ADD_HEADERS.union(Self::CHANGE_BODY).union(Self::ADD_RCPT).union(Self::DELETE_RCPT);
}

named_flags! {
    /// Protocol steps (`SMFIP_*`): events the milter does not want (`NO_*`), events it will
    /// not answer (`NR_*`), and extras the MTA can do.
    Steps {
        NO_CONNECT = 0x1, "no-connect";
        NO_HELO = 0x2, "no-helo";
        NO_MAIL = 0x4, "no-envelope-from";
        NO_RCPT = 0x8, "no-envelope-recipient";
        NO_BODY = 0x10, "no-body";
        NO_HEADERS = 0x20, "no-headers";
        NO_EOH = 0x40, "no-end-of-header";
        NR_HEADER = 0x80, "no-reply-header";
        NO_UNKNOWN = 0x100, "no-unknown";
        NO_DATA = 0x200, "no-data";
        /// The MTA understands the SKIP reply.
        SKIP = 0x400, "skip";
        /// The MTA also sends recipients it rejected itself.
        RCPT_REJ = 0x800, "envelope-recipient-rejected";
        NR_CONNECT = 0x1000, "no-reply-connect";
        NR_HELO = 0x2000, "no-reply-helo";
        NR_MAIL = 0x4000, "no-reply-envelope-from";
        NR_RCPT = 0x8000, "no-reply-envelope-recipient";
        NR_DATA = 0x10000, "no-reply-data";
        NR_UNKNOWN = 0x20000, "no-reply-unknown";
        NR_EOH = 0x40000, "no-reply-end-of-header";
        NR_BODY = 0x80000, "no-reply-body";
        /// Header values keep their leading space, both ways.
        HDR_LEADSPC = 0x100000, "header-value-with-leading-space";
        MDS_256K = 0x10000000, "max-data-size-256k";
        MDS_1M = 0x20000000, "max-data-size-1m";
    }
}

impl Steps {
    /// The "do not send this event" bits.
    pub const NO_EVENTS: Self = Self::NO_CONNECT
        .union(Self::NO_HELO)
        .union(Self::NO_MAIL)
        .union(Self::NO_RCPT)
        .union(Self::NO_BODY)
        .union(Self::NO_HEADERS)
        .union(Self::NO_EOH)
        .union(Self::NO_UNKNOWN)
        .union(Self::NO_DATA);
    /// The "the milter will not reply to this event" bits.
    pub const NO_REPLIES: Self = Self::NR_HEADER
        .union(Self::NR_CONNECT)
        .union(Self::NR_HELO)
        .union(Self::NR_MAIL)
        .union(Self::NR_RCPT)
        .union(Self::NR_DATA)
        .union(Self::NR_UNKNOWN)
        .union(Self::NR_EOH)
        .union(Self::NR_BODY);
    /// Extras that need both the MTA's offer and a milter's request.
    pub const EXTRAS: Self = Self::SKIP.union(Self::RCPT_REJ).union(Self::HDR_LEADSPC);
    /// Maximum data size bits: between the MTA and libmilter only.
    pub const MAX_DATA_SIZE: Self = Self::MDS_256K.union(Self::MDS_1M);
    /// Every step bit protocol version 6 defines (`SMFI_CURR_PROT`).
    pub const ALL: Self = Self::NO_EVENTS.union(Self::NO_REPLIES).union(Self::EXTRAS);
    /// What libmilter assumes when an MTA offers no steps at all (`SMFI_V1_PROT`).
    pub const V1: Self = Self::NO_CONNECT
        .union(Self::NO_HELO)
        .union(Self::NO_MAIL)
        .union(Self::NO_RCPT)
        .union(Self::NO_BODY)
        .union(Self::NO_HEADERS);

    /// The step bits an MTA speaking `version` can offer (as Postfix masks them).
    pub fn for_version(version: u32) -> Self {
        let v2 = Self::V1 | Self::NO_EOH;
        match version {
            0..=2 => v2,
            3 => v2 | Self::NO_UNKNOWN,
            4 | 5 => v2 | Self::NO_UNKNOWN | Self::NO_DATA,
            _ => Self::ALL.union(Self::MAX_DATA_SIZE),
        }
    }

    /// The largest payload a peer may send once these steps are agreed.
    pub fn max_data_size(self) -> usize {
        if self.contains(Self::MDS_1M) {
            1024 * 1024 - 1
        } else if self.contains(Self::MDS_256K) {
            256 * 1024 - 1
        } else {
            super::MAX_DATA_SIZE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let steps = Steps::NO_CONNECT | Steps::SKIP | Steps::HDR_LEADSPC;
        assert_eq!(steps.to_string(), "no-connect|skip|header-value-with-leading-space");
        assert_eq!(Steps::parse(&steps.to_string()), Ok(steps));
        assert_eq!(Actions::ALL.to_string().split('|').count(), 9);
        assert_eq!(Actions::parse(&Actions::ALL.to_string()), Ok(Actions::ALL));
    }

    #[test]
    fn unknown_bits_are_shown_in_hex() {
        assert_eq!(Steps::from_bits_retain(0x1 | 0x4000_0000).to_string(), "no-connect|0x40000000");
        assert_eq!(Actions::empty().to_string(), "none");
        assert_eq!(Steps::parse("0x400"), Ok(Steps::SKIP));
    }

    #[test]
    fn parse_names_the_unknown_flag() {
        let err = Steps::parse("skip|no-such").unwrap_err().to_string();
        assert!(err.starts_with("unknown flag \"no-such\" (known: no-connect, "), "{err}");
        let err = Actions::parse("0xzz").unwrap_err().to_string();
        assert_eq!(err, "\"0xzz\" is not a hexadecimal number");
    }

    #[test]
    fn the_masks_keep_their_libmilter_values() {
        assert_eq!(Actions::ALL.bits(), 0x1FF);
        assert_eq!(Actions::V1.bits(), 0x0F);
        assert_eq!(Steps::ALL.bits(), 0x1F_FFFF);
        assert_eq!(Steps::V1.bits(), 0x3F);
        assert_eq!(Steps::NO_EVENTS.bits(), 0x37F);
        assert_eq!(Steps::EXTRAS.bits(), 0x10_0C00);
        let offers: Vec<u32> = [2, 3, 4, 5, 6].map(|v| Steps::for_version(v).bits()).to_vec();
        assert_eq!(offers, [0x7F, 0x17F, 0x37F, 0x37F, 0x301F_FFFF]);
    }

    #[test]
    fn groups_partition_the_v6_bits() {
        let all = Steps::NO_EVENTS | Steps::NO_REPLIES | Steps::EXTRAS;
        assert_eq!(all, Steps::ALL);
        assert!(!Steps::NO_EVENTS.intersects(Steps::NO_REPLIES));
    }
}
