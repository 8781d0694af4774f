//! Decide options as a small `Copy` bit set.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};
use std::str::FromStr;

/// One decide option, named as in the SDKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecideOption {
    /// Send no impression event (`DISABLE_DECISION_EVENT`).
    DisableDecisionEvent,
    /// Drop disabled flags from decide-for-keys and decide-all (`ENABLED_FLAGS_ONLY`).
    EnabledFlagsOnly,
    /// Skip the user profile service lookup and save (`IGNORE_USER_PROFILE_SERVICE`).
    IgnoreUserProfileService,
    /// Collect decision reasons (`INCLUDE_REASONS`).
    IncludeReasons,
    /// Leave variables out of the decision (`EXCLUDE_VARIABLES`).
    ExcludeVariables,
    /// Async API: fetch a CMAB prediction without reading or filling the cache
    /// (`IGNORE_CMAB_CACHE`).
    IgnoreCmabCache,
    /// Async API: empty the whole CMAB cache before the lookup (`RESET_CMAB_CACHE`).
    ResetCmabCache,
    /// Async API: drop this user's entry for the rule before the lookup
    /// (`INVALIDATE_USER_CMAB_CACHE`).
    InvalidateUserCmabCache,
}

impl DecideOption {
    /// Every option.
    pub const ALL: [DecideOption; 8] = [
        DecideOption::DisableDecisionEvent,
        DecideOption::EnabledFlagsOnly,
        DecideOption::IgnoreUserProfileService,
        DecideOption::IncludeReasons,
        DecideOption::ExcludeVariables,
        DecideOption::IgnoreCmabCache,
        DecideOption::ResetCmabCache,
        DecideOption::InvalidateUserCmabCache,
    ];

    /// The SDK string, e.g. "INCLUDE_REASONS".
    pub fn as_str(self) -> &'static str {
        match self {
            DecideOption::DisableDecisionEvent => "DISABLE_DECISION_EVENT",
            DecideOption::EnabledFlagsOnly => "ENABLED_FLAGS_ONLY",
            DecideOption::IgnoreUserProfileService => "IGNORE_USER_PROFILE_SERVICE",
            DecideOption::IncludeReasons => "INCLUDE_REASONS",
            DecideOption::ExcludeVariables => "EXCLUDE_VARIABLES",
            DecideOption::IgnoreCmabCache => "IGNORE_CMAB_CACHE",
            DecideOption::ResetCmabCache => "RESET_CMAB_CACHE",
            DecideOption::InvalidateUserCmabCache => "INVALIDATE_USER_CMAB_CACHE",
        }
    }

    fn bit(self) -> u8 {
        option_bit(self)
    }
}

impl fmt::Display for DecideOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no decide option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown decide option \"{0}\"")]
pub struct UnknownDecideOption(pub String);

impl FromStr for DecideOption {
    type Err = UnknownDecideOption;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DecideOption::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownDecideOption(s.to_string()))
    }
}

/// A set of decide options. `Copy`; combine with `|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DecideOptions(u8);

impl DecideOptions {
    /// No option.
    pub const NONE: DecideOptions = DecideOptions(0);

    /// This set plus `option`.
    pub const fn with(self, option: DecideOption) -> Self {
        DecideOptions(self.0 | option_bit(option))
    }

    /// This set minus `option`.
    pub const fn without(self, option: DecideOption) -> Self {
        DecideOptions(self.0 & !option_bit(option))
    }

    /// Whether `option` is in the set.
    #[inline]
    pub const fn contains(self, option: DecideOption) -> bool {
        self.0 & option_bit(option) != 0
    }

    /// The options in the set.
    pub fn iter(self) -> impl Iterator<Item = DecideOption> {
        DecideOption::ALL
            .into_iter()
            .filter(move |o| self.contains(*o))
    }
}

const fn option_bit(option: DecideOption) -> u8 {
    match option {
        DecideOption::DisableDecisionEvent => 1,
        DecideOption::EnabledFlagsOnly => 2,
        DecideOption::IgnoreUserProfileService => 4,
        DecideOption::IncludeReasons => 8,
        DecideOption::ExcludeVariables => 16,
        DecideOption::IgnoreCmabCache => 32,
        DecideOption::ResetCmabCache => 64,
        DecideOption::InvalidateUserCmabCache => 128,
    }
}

impl From<DecideOption> for DecideOptions {
    fn from(o: DecideOption) -> Self {
        DecideOptions(o.bit())
    }
}

impl BitOr for DecideOptions {
    type Output = DecideOptions;
    fn bitor(self, rhs: Self) -> Self {
        DecideOptions(self.0 | rhs.0)
    }
}

impl BitOr<DecideOption> for DecideOptions {
    type Output = DecideOptions;
    fn bitor(self, rhs: DecideOption) -> Self {
        self.with(rhs)
    }
}

impl BitOr for DecideOption {
    type Output = DecideOptions;
    fn bitor(self, rhs: Self) -> DecideOptions {
        DecideOptions::from(self).with(rhs)
    }
}

impl BitOrAssign for DecideOptions {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl FromIterator<DecideOption> for DecideOptions {
    fn from_iter<I: IntoIterator<Item = DecideOption>>(iter: I) -> Self {
        iter.into_iter()
            .fold(DecideOptions::NONE, DecideOptions::with)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip() {
        for o in DecideOption::ALL {
            assert_eq!(o.to_string().parse::<DecideOption>(), Ok(o));
        }
        assert!("NOPE".parse::<DecideOption>().is_err());
    }

    #[test]
    fn set_operations() {
        let s = DecideOption::IncludeReasons | DecideOption::ExcludeVariables;
        assert!(s.contains(DecideOption::IncludeReasons));
        assert!(!s.contains(DecideOption::EnabledFlagsOnly));
        assert!(!s
            .without(DecideOption::IncludeReasons)
            .contains(DecideOption::IncludeReasons));
        assert_eq!(s.iter().count(), 2);
        assert_eq!(DecideOptions::NONE | s, s);
    }

    #[test]
    fn or_assign_and_collect_add_options() {
        let mut s = DecideOptions::from(DecideOption::IncludeReasons);
        s |= DecideOption::ExcludeVariables | DecideOption::EnabledFlagsOnly;
        assert_eq!(s.iter().count(), 3);
        assert!(s.contains(DecideOption::IncludeReasons));
        assert!(s.contains(DecideOption::EnabledFlagsOnly));
        let collected: DecideOptions =
            [DecideOption::ExcludeVariables, DecideOption::IncludeReasons]
                .into_iter()
                .collect();
        assert_eq!(
            collected,
            DecideOption::ExcludeVariables | DecideOption::IncludeReasons
        );
        assert_eq!(
            std::iter::empty().collect::<DecideOptions>(),
            DecideOptions::NONE
        );
    }

    #[test]
    fn or_of_overlapping_sets_keeps_both() {
        let a = DecideOption::IncludeReasons | DecideOption::ExcludeVariables;
        let b = DecideOption::ExcludeVariables | DecideOption::EnabledFlagsOnly;
        assert_eq!((a | b).iter().count(), 3);
        assert_eq!(a | a, a);
        let c = a | DecideOption::IncludeReasons;
        assert_eq!(c, a);
        assert!((DecideOptions::NONE | DecideOption::EnabledFlagsOnly)
            .contains(DecideOption::EnabledFlagsOnly));
    }
}
