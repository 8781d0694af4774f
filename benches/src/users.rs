//! The plan's users as flagbridge [`UserContext`]s.

use flagbridge_engine::{AttributeValue, UserContext};
use serde_json::Value;

use crate::fixtures::{Forced, User};

/// A flagbridge user context with the plan user's id and attributes (in plan order).
pub fn context(user: &User) -> UserContext {
    let mut ctx = UserContext::new(user.id.as_str());
    for (key, value) in &user.attributes {
        ctx.set_attribute(key.as_str(), attribute(value));
    }
    ctx
}

/// [`context`] plus the forced decision of case (c).
pub fn forced_context(user: &User, forced: &Forced) -> UserContext {
    let mut ctx = context(user);
    ctx.set_forced_decision(&forced.flag, forced.rule.as_deref(), &forced.variation);
    ctx
}

/// A JSON attribute value as the engine's [`AttributeValue`] (objects and arrays become Null;
/// the plan has none).
pub fn attribute(value: &Value) -> AttributeValue {
    AttributeValue::try_from(value).unwrap_or(AttributeValue::Null)
}

/// User `i` of the many-users benches (`delivery.rs`, `users_paired.rs`): its own id, a plan
/// and an email.
pub fn numbered(i: usize) -> UserContext {
    UserContext::new(format!("user-{i}"))
        .with_attribute("plan", if i.is_multiple_of(3) { "pro" } else { "basic" })
        .with_attribute("email", format!("user-{i}@example.com"))
}
