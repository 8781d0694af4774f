//! The async decide (JavaScript `decideAsync` / `decideForKeysAsync` / `decideAllAsync`): the
//! engine's [`CmabCall`] driven to the end, the predictions of one round fetched concurrently
//! (JavaScript starts every flag's fetch before awaiting any). One flag whose prediction the
//! cache holds is decided in one flow run, without a call.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use flagbridge_engine::{
    AsyncKeys, CmabAnswer, CmabCache, CmabCall, DecideOptions, Decider, Decision, OneAsync,
    UserContext,
};

use super::cmab::CmabService;

/// Decides `keys` for `user` with CMAB rules answered by `cmab` (`None`: every prediction
/// fails, as a missing service would). `options` are the call's; the decider adds its
/// defaults (the same set is given to the CMAB cache).
pub async fn decide_async<'a>(
    decider: &Decider<'a>,
    cmab: Option<&CmabService>,
    user: &UserContext,
    keys: AsyncKeys<'_>,
    options: DecideOptions,
) -> Vec<Decision<'a>> {
    if let AsyncKeys::One(key) = keys {
        return vec![decide_one_async(decider, cmab, user, key, options).await];
    }
    let call = decider.start_async(user, keys, options);
    drive(call, decider, cmab, user, options).await.finish(user)
}

/// [`decide_async`] of one flag (JavaScript `decideAsync`), as one decision. A prediction in
/// the cache answers in one flow run, without allocating.
pub async fn decide_one_async<'a>(
    decider: &Decider<'a>,
    cmab: Option<&CmabService>,
    user: &UserContext,
    flag_key: &str,
    options: DecideOptions,
) -> Decision<'a> {
    let cache = peek(cmab, options | decider.default_decide_options());
    match decider.decide_one_async(user, flag_key, options, cache) {
        OneAsync::Decided(decision) => decision,
        // Boxed: the requests' future is large, and a hit should neither carry nor move it.
        OneAsync::Waiting(call) => Box::pin(drive(call, decider, cmab, user, options))
            .await
            .finish_one(user),
    }
}

/// The cache the engine may ask before listing a prediction (none when a cache option is in
/// force).
fn peek(cmab: Option<&CmabService>, all_options: DecideOptions) -> Option<&dyn CmabCache> {
    match cmab {
        Some(service) if CmabService::cache_may_answer(all_options) => Some(service),
        _ => None,
    }
}

/// Answers every prediction `call` asks for, round after round, until it asks for none.
async fn drive<'a>(
    mut call: CmabCall<'a>,
    decider: &Decider<'a>,
    cmab: Option<&CmabService>,
    user: &UserContext,
    options: DecideOptions,
) -> CmabCall<'a> {
    let all_options = options | decider.default_decide_options();
    let cache = peek(cmab, all_options);
    loop {
        let pending = call.pending_with(user, cache);
        if pending.is_empty() {
            return call;
        }
        let answers = join_all(pending.iter().map(|request| async move {
            let Some(service) = cmab else {
                return CmabAnswer::Failed;
            };
            match service.get_decision(request, all_options).await {
                Ok(d) => CmabAnswer::variation(d.variation_id, d.cmab_uuid),
                Err(e) => {
                    tracing::warn!(rule = request.rule_key, error = %e, "Failed to fetch CMAB data");
                    CmabAnswer::Failed
                }
            }
        }))
        .await;
        for (request, answer) in pending.iter().zip(answers) {
            call.answer(request.slot, request.rule_id, answer);
        }
    }
}

/// Runs the futures concurrently on this task and returns their outputs in order.
pub(crate) async fn join_all<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.map(Box::pin).collect();
    if futures.len() == 1 {
        if let Some(only) = futures.pop() {
            return vec![only.await];
        }
    }
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(v) => *output = Some(v),
                    Poll::Pending => done = false,
                }
            }
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
