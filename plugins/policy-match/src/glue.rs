//! The WIT glue every built-in stage needs, written once.

use crate::{CallView, ConfigError, KeyFamily, State, Verdict};

/// A built-in stage's engine, as [`wit_glue!`] drives it.
pub trait StageEngine: Sized {
    /// Compiles the stage's configuration (`configure`).
    fn from_json(config_json: &str) -> Result<Self, Vec<ConfigError>>;
    /// Warnings about the configuration, logged once it is accepted.
    fn warnings(&self) -> &[String];
    /// The verdict on one call, and a line to log with it, if any.
    fn decide(&self, call: &impl CallView, state: &mut impl State) -> (Verdict, Option<String>);
    /// The families of keys this configuration uses, described to the host
    /// at `configure`.
    fn key_families(&self) -> Vec<KeyFamily>;
}

/// Generates the adapters between the wit-bindgen types and this crate's.
///
/// Invoke it in a stage's component module, right after
/// `wit_bindgen::generate!({ path: "../../wit", world: "stateful-policy-stage" })`
/// (a macro, because the wit-bindgen types are generated inside each
/// stage's crate, and this crate does not depend on wit-bindgen). It
/// defines:
///
/// - `HostCall<'a>`: the host's `tool-call` as a [`CallView`](crate::CallView),
///   fetching the values many conditions ask for (tool, annotations,
///   session, environment, has-arguments) once per `evaluate`;
/// - `HostState`: the `state` and `host` imports as a [`State`](crate::State);
/// - `verdict`, `config_errors`: engine records to WIT records;
/// - `log_warnings`: writes configure-time warnings to the host log;
/// - `not_configured(stage)`: the fail-closed verdict for an `evaluate`
///   before any successful `configure`.
///
/// `wit_glue!(stage Name = path::to::Engine, "name")` also defines the
/// component itself: a thread-local engine (a failed `configure` keeps the
/// previous one, so a rejected reload changes nothing), `configure`,
/// `evaluate` (through [`StageEngine`]) and the export.
#[macro_export]
macro_rules! wit_glue {
    (stage $stage:ident = $engine:ty, $name:literal) => {
        $crate::wit_glue!();

        thread_local! {
            static ENGINE: ::std::cell::RefCell<Option<$engine>> =
                const { ::std::cell::RefCell::new(None) };
        }

        struct $stage;

        impl exports::helio::governance::stage::Guest for $stage {
            fn configure(
                config_json: String,
            ) -> Result<(), Vec<helio::governance::types::ConfigError>> {
                let compiled = <$engine as $crate::StageEngine>::from_json(&config_json)
                    .map_err(config_errors)?;
                log_warnings($crate::StageEngine::warnings(&compiled));
                let families: Vec<helio::governance::state::KeyFamily> =
                    $crate::StageEngine::key_families(&compiled)
                        .into_iter()
                        .map(|f| helio::governance::state::KeyFamily {
                            prefix: f.prefix,
                            kind: f.kind,
                            name: f.name,
                            idle_ttl_ms: f.idle_ttl_ms,
                        })
                        .collect();
                helio::governance::state::describe(&families);
                ENGINE.with(|e| *e.borrow_mut() = Some(compiled));
                Ok(())
            }

            fn evaluate(
                call: &helio::governance::types::ToolCall,
            ) -> helio::governance::types::Verdict {
                ENGINE.with(|e| {
                    let engine = e.borrow();
                    let Some(engine) = engine.as_ref() else {
                        return not_configured($name);
                    };
                    let (decided, warning) =
                        $crate::StageEngine::decide(engine, &HostCall::new(call), &mut HostState);
                    if let Some(warning) = warning {
                        log_warnings(&[warning]);
                    }
                    verdict(decided)
                })
            }
        }

        export!($stage);
    };
    () => {
        /// The host's call, with the values many conditions ask for
        /// fetched once.
        struct HostCall<'a> {
            call: &'a helio::governance::types::ToolCall,
            tool: ::std::cell::OnceCell<String>,
            annotations: ::std::cell::OnceCell<$crate::Annotations>,
            session: ::std::cell::OnceCell<Option<String>>,
            environment: ::std::cell::OnceCell<Option<String>>,
            has_arguments: ::std::cell::OnceCell<bool>,
        }

        impl<'a> HostCall<'a> {
            fn new(call: &'a helio::governance::types::ToolCall) -> Self {
                HostCall {
                    call,
                    tool: ::std::cell::OnceCell::new(),
                    annotations: ::std::cell::OnceCell::new(),
                    session: ::std::cell::OnceCell::new(),
                    environment: ::std::cell::OnceCell::new(),
                    has_arguments: ::std::cell::OnceCell::new(),
                }
            }
        }

        impl $crate::CallView for HostCall<'_> {
            fn tool(&self) -> &str {
                self.tool.get_or_init(|| self.call.tool())
            }

            fn annotations(&self) -> $crate::Annotations {
                *self.annotations.get_or_init(|| {
                    let a = self.call.annotations();
                    $crate::Annotations {
                        read_only_hint: a.read_only_hint,
                        destructive_hint: a.destructive_hint,
                        idempotent_hint: a.idempotent_hint,
                        open_world_hint: a.open_world_hint,
                    }
                })
            }

            fn session(&self) -> Option<&str> {
                self.session.get_or_init(|| self.call.session()).as_deref()
            }

            fn environment(&self) -> Option<&str> {
                self.environment
                    .get_or_init(|| self.call.environment())
                    .as_deref()
            }

            fn has_arguments(&self) -> bool {
                *self.has_arguments.get_or_init(|| self.call.has_arguments())
            }

            fn argument(&self, path: &str) -> Option<$crate::Value> {
                use helio::governance::types::JsonValue;
                self.call.argument(path).map(|v| match v {
                    JsonValue::Null => $crate::Value::Null,
                    JsonValue::Boolean(b) => $crate::Value::Bool(b),
                    JsonValue::Number(n) => $crate::Value::Number(n),
                    JsonValue::Text(s) => $crate::Value::Text(s),
                    JsonValue::Structured(s) => $crate::Value::Structured(s),
                })
            }

            fn metadata(&self, key: &str) -> Option<String> {
                self.call.metadata(key)
            }
        }

        /// The host's governance state and clock.
        struct HostState;

        impl HostState {
            fn rate_window(w: helio::governance::state::RateWindow) -> $crate::RateWindow {
                $crate::RateWindow {
                    allowed: w.allowed,
                    current: w.current,
                    limit: w.limit,
                    reset_at_ms: w.reset_at_ms,
                }
            }
        }

        impl $crate::State for HostState {
            fn now_ms(&self) -> u64 {
                helio::governance::host::now_ms()
            }

            fn rate_peek(&mut self, key: &str, limit: u64, window_ms: u64) -> $crate::RateWindow {
                Self::rate_window(helio::governance::state::rate_peek(key, limit, window_ms))
            }

            fn rate_take(&mut self, key: &str, limit: u64, window_ms: u64) -> $crate::RateWindow {
                Self::rate_window(helio::governance::state::rate_take(key, limit, window_ms))
            }

            fn spend_reserve(
                &mut self,
                key: &str,
                amount: &str,
                limit: &str,
                window_ms: Option<u64>,
            ) -> Result<$crate::SpendWindow, String> {
                helio::governance::state::spend_reserve(key, amount, limit, window_ms).map(|w| {
                    $crate::SpendWindow {
                        allowed: w.allowed,
                        spent: w.spent,
                        limit: w.limit,
                        reset_at_ms: w.reset_at_ms,
                    }
                })
            }

            fn evidence(&self, session: &str, key: &str) -> $crate::EvidenceStatus {
                use helio::governance::state::EvidenceStatus;
                match helio::governance::state::evidence(session, key) {
                    EvidenceStatus::Present => $crate::EvidenceStatus::Present,
                    EvidenceStatus::Expired => $crate::EvidenceStatus::Expired,
                    EvidenceStatus::Missing => $crate::EvidenceStatus::Missing,
                }
            }

            fn completed(&self, session: &str, tool: &str) -> Option<$crate::Completion> {
                helio::governance::state::completed(session, tool).map(|c| $crate::Completion {
                    succeeded: c.succeeded,
                    at_ms: c.at_ms,
                })
            }
        }

        fn decision(d: $crate::Decision) -> helio::governance::types::Decision {
            helio::governance::types::Decision {
                action: d.action,
                rule: d.rule,
                rule_index: d.rule_index,
                explanation: d.explanation,
            }
        }

        fn feedback(f: $crate::Feedback) -> helio::governance::types::Feedback {
            helio::governance::types::Feedback {
                reason: f.reason,
                message: f.message,
                suggestion: f.suggestion,
                retry_allowed: f.retry_allowed,
                extra_json: f.extra_json,
            }
        }

        fn verdict(v: $crate::Verdict) -> helio::governance::types::Verdict {
            use helio::governance::types::{ApprovalRequest, Verdict};
            match v {
                $crate::Verdict::Allow(d) => Verdict::Allow(decision(d)),
                $crate::Verdict::Deny(d, f) => Verdict::Deny((decision(d), feedback(f))),
                $crate::Verdict::DryRun(d) => Verdict::DryRun(decision(d)),
                $crate::Verdict::RequireApproval(r) => Verdict::RequireApproval(ApprovalRequest {
                    decision: decision(r.decision),
                    channel: r.channel,
                    timeout_ms: r.timeout_ms,
                    feedback: r.feedback.map(feedback),
                }),
            }
        }

        fn config_errors(
            errors: Vec<$crate::ConfigError>,
        ) -> Vec<helio::governance::types::ConfigError> {
            errors
                .into_iter()
                .map(|e| helio::governance::types::ConfigError {
                    path: e.path,
                    message: e.message,
                })
                .collect()
        }

        fn log_warnings(warnings: &[String]) {
            for warning in warnings {
                helio::governance::host::log(helio::governance::types::Level::Warn, warning);
            }
        }

        /// `evaluate` before a successful `configure`: fail closed.
        fn not_configured(stage: &str) -> helio::governance::types::Verdict {
            helio::governance::types::Verdict::Deny((
                helio::governance::types::Decision {
                    action: "deny".into(),
                    rule: None,
                    rule_index: None,
                    explanation: format!("The {stage} stage has not been configured"),
                },
                helio::governance::types::Feedback {
                    reason: "plugin_error".into(),
                    message: format!(
                        "Blocked: the {stage} stage has not been configured, so the call is refused"
                    ),
                    suggestion: Some(
                        "Do not retry this call; ask an operator to check Helio's policy configuration."
                            .into(),
                    ),
                    retry_allowed: false,
                    extra_json: None,
                },
            ))
        }
    };
}
