//! Deciding flags for a user: [`Decider`] and the values it returns.

pub(crate) mod cmab;
pub(crate) mod decision;
mod experiment;
mod flow;
pub(crate) mod forced;
pub(crate) mod options;
pub(crate) mod profile;

use std::borrow::Cow;

use decision::{Decision, Outcome};
use forced::ForcedVariations;
use options::{DecideOption, DecideOptions};
use profile::{Tracker, UserProfileService};

use crate::audience::attributes::UserAttributes;
use crate::bucketing::BucketingKey;
use crate::config::{Flag, ProjectConfig};
use crate::events::Conversion;
use crate::user::UserContext;

/// Multi-flag calls deciding at least this many flags resolve the user's attributes up front.
const RESOLVE_ATTRIBUTES_FROM: usize = 4;

/// What every flag of one call shares: the user, its attributes, its bucketing id.
struct Call<'a, 'u> {
    user: &'u UserContext,
    attrs: UserAttributes<'a, 'u>,
    /// The bucketing id, its hash prefix computed once.
    bucketing_key: BucketingKey,
}

impl<'a, 'u> Call<'a, 'u> {
    fn new(user: &'u UserContext, attrs: UserAttributes<'a, 'u>) -> Self {
        Call {
            user,
            attrs,
            bucketing_key: BucketingKey::new(user.bucketing_id()),
        }
    }
}

/// Decides flags against one compiled config. Cheap to build (a few references); build one per
/// config snapshot, or per call.
#[derive(Clone, Copy)]
pub struct Decider<'a> {
    config: &'a ProjectConfig,
    default_options: DecideOptions,
    ups: Option<&'a dyn UserProfileService>,
    forced: Option<&'a ForcedVariations>,
}

impl std::fmt::Debug for Decider<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decider")
            .field("revision", &self.config.revision())
            .field("default_options", &self.default_options)
            .field("user_profile_service", &self.ups.is_some())
            .field("forced_variations", &self.forced.is_some())
            .finish()
    }
}

impl<'a> Decider<'a> {
    /// A decider with no default options, no user profile service and no forced variations.
    pub fn new(config: &'a ProjectConfig) -> Self {
        Decider {
            config,
            default_options: DecideOptions::NONE,
            ups: None,
            forced: None,
        }
    }

    /// Options added to every call (the client's `defaultDecideOptions`). Default: none.
    pub fn default_options(mut self, options: DecideOptions) -> Self {
        self.default_options = options;
        self
    }

    /// Sticky bucketing through a user profile service. Default: none.
    pub fn user_profile_service(mut self, ups: &'a dyn UserProfileService) -> Self {
        self.ups = Some(ups);
        self
    }

    /// Legacy forced variations (`set_forced_variation`). Default: none.
    pub fn forced_variations(mut self, forced: &'a ForcedVariations) -> Self {
        self.forced = Some(forced);
        self
    }

    /// The options added to every call ([`default_options`](Self::default_options)).
    pub fn default_decide_options(&self) -> DecideOptions {
        self.default_options
    }

    /// The config this decider reads.
    pub fn config(&self) -> &'a ProjectConfig {
        self.config
    }

    /// Decide one flag. `ENABLED_FLAGS_ONLY` is ignored here, as in the SDKs.
    pub fn decide(
        &self,
        user: &UserContext,
        flag_key: &str,
        options: DecideOptions,
    ) -> Decision<'a> {
        let options = (options | self.default_options).without(DecideOption::EnabledFlagsOnly);
        let Some(flag) = self.config.flag(flag_key) else {
            return self.unknown_flag(flag_key);
        };
        // One flag cannot meet the same experiment twice (unless its experimentIds repeat), so
        // without a profile service the in-call sticky map is not needed.
        let call = Call::new(
            user,
            UserAttributes::scan(user, &self.config.attribute_slots),
        );
        if self.ups.is_none() && user.experiment_bucket_map().is_none() && !flag.repeats_experiment
        {
            return self.decide_flag(&call, flag, options, None);
        }
        let mut tracker = self.load_profile(user, options, flag.repeats_experiment);
        let decision = self.decide_flag(&call, flag, options, tracker.as_mut());
        self.save_profile(user, tracker);
        decision
    }

    /// Decide several flags, in key order (a repeated key is decided once, at its first place,
    /// as the SDK's result map keeps one decision per key). Decisions dropped by
    /// `ENABLED_FLAGS_ONLY` are returned with `omitted_from_result() == true` (their impression
    /// still has to be sent). Unknown keys give error decisions.
    pub fn decide_for_keys(
        &self,
        user: &UserContext,
        keys: &[&str],
        options: DecideOptions,
    ) -> Vec<Decision<'a>> {
        let options = options | self.default_options;
        let unique = keys
            .iter()
            .enumerate()
            .filter(|(i, k)| !keys[..*i].contains(k))
            .map(|(_, k)| (*k, self.config.flag(k)));
        self.decide_many(user, unique, keys.len(), options)
    }

    /// Decide every flag of the datafile, in [`ProjectConfig::flag_keys`] order.
    pub fn decide_all(&self, user: &UserContext, options: DecideOptions) -> Vec<Decision<'a>> {
        let options = options | self.default_options;
        let config = self.config;
        let flags = config
            .flag_order
            .iter()
            .map(|i| (config.flags[*i].key.as_str(), Some(&config.flags[*i])));
        self.decide_many(user, flags, config.flag_order.len(), options)
    }

    fn decide_many<'k>(
        &self,
        user: &UserContext,
        flags: impl Iterator<Item = (&'k str, Option<&'a Flag>)>,
        count: usize,
        options: DecideOptions,
    ) -> Vec<Decision<'a>> {
        let mut out = Vec::with_capacity(count);
        if count == 0 {
            return out;
        }
        let mut tracker = self.load_profile(user, options, true);
        let only_enabled = options.contains(DecideOption::EnabledFlagsOnly);
        // Resolving the attributes costs about as much as a few lookups; worth it for many flags.
        let attrs = if count >= RESOLVE_ATTRIBUTES_FROM {
            let audiences = self.config.audiences.len();
            UserAttributes::resolved(user, &self.config.attribute_slots, audiences)
        } else {
            UserAttributes::scan(user, &self.config.attribute_slots)
        };
        let call = Call::new(user, attrs);
        for (key, flag) in flags {
            let decision = match flag {
                None => self.unknown_flag(key),
                Some(flag) => {
                    let mut d = self.decide_flag(&call, flag, options, tracker.as_mut());
                    d.omitted = only_enabled && !d.enabled();
                    d
                }
            };
            out.push(decision);
        }
        self.save_profile(user, tracker);
        out
    }

    fn unknown_flag(&self, key: &str) -> Decision<'a> {
        Decision::error(
            self.config,
            key,
            format!("No flag was found for key \"{key}\"."),
        )
    }

    #[inline]
    fn decide_flag(
        &self,
        call: &Call<'a, '_>,
        flag: &'a Flag,
        options: DecideOptions,
        tracker: Option<&mut Tracker<'a>>,
    ) -> Decision<'a> {
        let (outcome, reasons) = if options.contains(DecideOption::IncludeReasons) {
            self.run_flow::<true>(call, flag, tracker)
        } else {
            self.run_flow::<false>(call, flag, tracker)
        };
        Decision {
            config: self.config,
            flag_key: Cow::Borrowed(flag.key.as_str()),
            flag: Some(flag),
            outcome,
            reasons,
            options,
            omitted: false,
            error: false,
            cmab_uuid: None,
        }
    }

    /// The decision flow, with reasons collected or not (`REASONS`).
    #[inline]
    fn run_flow<const REASONS: bool>(
        &self,
        call: &Call<'a, '_>,
        flag: &'a Flag,
        tracker: Option<&mut Tracker<'a>>,
    ) -> (Outcome<'a>, Vec<String>) {
        let mut flow = self.flow::<REASONS>(call, tracker);
        let outcome = flow.decide_flag(flag);
        (outcome, flow.reasons.into_vec())
    }

    /// The sticky-bucketing state for one call: the profile service's map, with the user's own
    /// `$opt_experiment_bucket_map` entries merged over it (JavaScript). JavaScript keeps this
    /// state even without a profile service, so a later flag in the same call sees an earlier
    /// flag's bucketing; `in_call` asks for that state when no service is configured.
    /// Inlined: most decides have nothing to load, and that answer costs a call otherwise.
    #[inline]
    fn load_profile(
        &self,
        user: &UserContext,
        options: DecideOptions,
        in_call: bool,
    ) -> Option<Tracker<'a>> {
        if options.contains(DecideOption::IgnoreUserProfileService) {
            return None;
        }
        let from_user = user.experiment_bucket_map();
        if self.ups.is_none() && from_user.is_none() && !in_call {
            return None;
        }
        Some(self.loaded_profile(user, from_user))
    }

    fn loaded_profile(
        &self,
        user: &UserContext,
        from_user: Option<&std::collections::HashMap<String, String>>,
    ) -> Tracker<'a> {
        let mut loaded = self
            .ups
            .and_then(|ups| ups.lookup(user.user_id()))
            .map(|p| p.experiment_bucket_map)
            .unwrap_or_default();
        if let Some(extra) = from_user {
            loaded.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Tracker {
            loaded,
            updates: Vec::new(),
        }
    }

    /// Inlined, as `load_profile`: without a service or a tracker there is nothing to save.
    #[inline]
    fn save_profile(&self, user: &UserContext, tracker: Option<Tracker<'a>>) {
        if let (Some(ups), Some(tracker)) = (self.ups, tracker) {
            Self::saved_profile(ups, user, tracker);
        }
    }

    fn saved_profile(ups: &dyn UserProfileService, user: &UserContext, tracker: Tracker<'a>) {
        if let Some(profile) = tracker.into_profile(user.user_id()) {
            ups.save(&profile);
        }
    }

    /// A conversion for `event_key`, or `None` when the datafile has no such event.
    pub fn track(
        &self,
        _user: &UserContext,
        event_key: &str,
        tags: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Option<Conversion<'a>> {
        let event = self.config.event(event_key)?;
        Some(Conversion::new(self.config, event, tags))
    }
}
