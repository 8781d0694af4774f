//! Heap allocations per decide, for every case of the plan. Meaningful only in a binary or test
//! that installs [`crate::alloc::CountingAlloc`] as its global allocator
//! (`tests/allocations.rs`, the `report` binary).

use flagbridge_engine::{DecideOption, DecideOptions, Decider, ProjectConfig, UserContext};

use crate::alloc::allocations_per_call;
use crate::fixtures::Plan;
use crate::users;

/// Calls per measurement (rotating over the plan's users).
pub const CALLS: u64 = 1_000;

/// One measured case.
#[derive(Debug, Clone)]
pub struct Row {
    /// e.g. `decide/a_experiment/small`.
    pub case: String,
    /// Options in SDK spelling, e.g. `EXCLUDE_VARIABLES`.
    pub options: String,
    /// Mean allocations per call.
    pub allocations: f64,
}

/// Measures every decide case on both fixtures plus decide_all on the large one.
pub fn measure(plan: &Plan) -> Vec<Row> {
    let plain: Vec<UserContext> = plan.users.iter().map(users::context).collect();
    let n = plain.len();
    let none = DecideOptions::NONE;
    let no_vars = none.with(DecideOption::ExcludeVariables);
    let reasons = no_vars.with(DecideOption::IncludeReasons);
    let mut rows = Vec::new();
    for fx in plan.fixtures() {
        let config = match ProjectConfig::parse(&fx.text) {
            Ok(config) => config,
            Err(e) => panic!("{}: {e}", fx.path.display()),
        };
        let decider = Decider::new(&config);
        let forced: Vec<UserContext> = plan
            .users
            .iter()
            .map(|u| users::forced_context(u, &fx.flags.forced))
            .collect();
        let f = &fx.flags;
        let cases: [(&str, &[UserContext], &str, DecideOptions); 7] = [
            ("a_experiment", &plain, &f.experiment, no_vars),
            ("a_experiment", &plain, &f.experiment, none),
            ("b_no_rules", &plain, &f.no_rules, no_vars),
            ("c_forced", &forced, &f.forced.flag, no_vars),
            ("d_reasons", &plain, &f.reasons, reasons),
            ("e_variables", &plain, &f.variables, none),
            ("e_variables", &plain, &f.variables, no_vars),
        ];
        for (label, ctxs, flag, options) in cases {
            // One warm-up round: anything lazily initialised is not a per-decide cost.
            for user in ctxs {
                std::hint::black_box(decider.decide(user, flag, options));
            }
            let mut i = 0usize;
            let allocations = allocations_per_call(CALLS, || {
                i += 1;
                decider.decide(&ctxs[i % n], flag, options)
            });
            rows.push(Row {
                case: format!("decide/{label}/{}", fx.name),
                options: options_label(options),
                allocations,
            });
        }
        let mut i = 0usize;
        let allocations = allocations_per_call(100, || {
            i += 1;
            decider.decide_all(&plain[i % n], none)
        });
        rows.push(Row {
            case: format!("decide_all/{}", fx.name),
            options: options_label(none),
            allocations,
        });
    }
    rows
}

fn options_label(options: DecideOptions) -> String {
    let names: Vec<String> = [DecideOption::ExcludeVariables, DecideOption::IncludeReasons]
        .into_iter()
        .filter(|o| options.contains(*o))
        .map(|o| o.to_string())
        .collect();
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(" + ")
    }
}
