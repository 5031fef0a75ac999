//! Action (`SMFIF_*`) and protocol-step (`SMFIP_*`) bit sets of the option negotiation.
//!
//! Both print as `|`-joined names, the vocabulary the original's logs and tools use, and
//! parse back from that text.

use std::fmt;

macro_rules! bit_set {
    ($(#[$doc:meta])* $name:ident { $($(#[$bdoc:meta])* $flag:ident = $value:expr, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub u32);

        impl $name {
            $($(#[$bdoc])* pub const $flag: $name = $name($value);)*

            /// Every named bit with its name, in bit order.
            pub const NAMED: &'static [($name, &'static str)] = &[$(($name::$flag, $text)),*];

            pub const fn empty() -> Self {
                $name(0)
            }

            pub const fn bits(self) -> u32 {
                self.0
            }

            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            pub const fn intersects(self, other: $name) -> bool {
                self.0 & other.0 != 0
            }

            pub const fn union(self, other: $name) -> $name {
                $name(self.0 | other.0)
            }

            pub const fn intersection(self, other: $name) -> $name {
                $name(self.0 & other.0)
            }

            pub const fn without(self, other: $name) -> $name {
                $name(self.0 & !other.0)
            }

            pub fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// Parses `name|name|...`; `none` or an empty string is the empty set, and
            /// a hexadecimal `0x...` number is taken as raw bits.
            pub fn parse(text: &str) -> Result<$name, String> {
                let text = text.trim();
                if text.is_empty() || text == "none" {
                    return Ok($name(0));
                }
                if let Some(hex) = text.strip_prefix("0x") {
                    return u32::from_str_radix(hex, 16)
                        .map($name)
                        .map_err(|_| format!("{text:?} is not a hexadecimal number"));
                }
                let mut bits = 0;
                for part in text.split('|') {
                    let part = part.trim();
                    match $name::NAMED.iter().find(|(_, n)| *n == part) {
                        Some((flag, _)) => bits |= flag.0,
                        None => {
                            let known: Vec<&str> = $name::NAMED.iter().map(|(_, n)| *n).collect();
                            return Err(format!("unknown flag {part:?} (known: {})", known.join(", ")));
                        }
                    }
                }
                Ok($name(bits))
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }

        impl std::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, rhs: $name) {
                self.0 |= rhs.0;
            }
        }

        impl std::ops::BitAnd for $name {
            type Output = $name;
            fn bitand(self, rhs: $name) -> $name {
                $name(self.0 & rhs.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if self.0 == 0 {
                    return f.write_str("none");
                }
                let mut rest = self.0;
                let mut first = true;
                for (flag, text) in $name::NAMED {
                    if self.0 & flag.0 != 0 {
                        if !first {
                            f.write_str("|")?;
                        }
                        f.write_str(text)?;
                        first = false;
                        rest &= !flag.0;
                    }
                }
                if rest != 0 {
                    if !first {
                        f.write_str("|")?;
                    }
                    write!(f, "0x{rest:x}")?;
                }
                Ok(())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(0x{:x}: {})", stringify!($name), self.0, self)
            }
        }
    };
}

bit_set! {
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
    pub const ALL: Actions = Actions(0x1FF);
    /// What libmilter assumes when an MTA offers no actions at all (`SMFI_V1_ACTS`).
    pub const V1: Actions = Actions(0x0F);
}

bit_set! {
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
    /// Every step bit protocol version 6 defines (`SMFI_CURR_PROT`).
    pub const ALL: Steps = Steps(0x1FFFFF);
    /// What libmilter assumes when an MTA offers no steps at all (`SMFI_V1_PROT`).
    pub const V1: Steps = Steps(0x3F);
    /// The "do not send this event" bits.
    pub const NO_EVENTS: Steps = Steps(0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x100 | 0x200);
    /// The "the milter will not reply to this event" bits.
    pub const NO_REPLIES: Steps =
        Steps(0x80 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000 | 0x40000 | 0x80000);
    /// Extras that need both the MTA's offer and a milter's request.
    pub const EXTRAS: Steps = Steps(0x400 | 0x800 | 0x100000);
    /// Maximum data size bits: between the MTA and libmilter only.
    pub const MAX_DATA_SIZE: Steps = Steps(0x10000000 | 0x20000000);

    /// The step bits an MTA speaking `version` can offer (as Postfix masks them).
    pub fn for_version(version: u32) -> Steps {
        match version {
            0..=2 => Steps(0x7F),
            3 => Steps(0x17F),
            4 | 5 => Steps(0x37F),
            _ => Steps::ALL.union(Steps::MAX_DATA_SIZE),
        }
    }

    /// The largest payload a peer may send once these steps are agreed.
    pub fn max_data_size(self) -> usize {
        if self.contains(Steps::MDS_1M) {
            1024 * 1024 - 1
        } else if self.contains(Steps::MDS_256K) {
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
        assert_eq!(Steps(0x1 | 0x4000_0000).to_string(), "no-connect|0x40000000");
        assert_eq!(Actions(0).to_string(), "none");
        assert_eq!(Steps::parse("0x400"), Ok(Steps::SKIP));
    }

    #[test]
    fn parse_names_the_unknown_flag() {
        let err = Steps::parse("skip|no-such").unwrap_err();
        assert!(err.contains("\"no-such\""), "{err}");
    }

    #[test]
    fn groups_partition_the_v6_bits() {
        let all = Steps::NO_EVENTS | Steps::NO_REPLIES | Steps::EXTRAS;
        assert_eq!(all, Steps::ALL);
        assert!(!Steps::NO_EVENTS.intersects(Steps::NO_REPLIES));
    }
}
