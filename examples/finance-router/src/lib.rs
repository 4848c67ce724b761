//! finance-router: a Helio approval router. A held call to a payment tool
//! whose amount is over a threshold (compared exactly, as decimals) goes to
//! the finance team's channel with a longer timeout and an escalation;
//! everything else goes where the policy asked (by default the dashboard).
//!
//! The routing logic is here, natively tested; `component.rs` is the
//! WebAssembly glue.

#![deny(unsafe_code)]

use std::cmp::Ordering;

use serde_json::Value;

#[cfg(target_arch = "wasm32")]
mod component;

/// The router's configuration (`approval.router.config` in helio.yaml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Tools whose calls are payments.
    pub tools: Vec<String>,
    /// The argument holding the amount.
    pub amount_field: String,
    /// Payments strictly over this go to finance (a decimal, e.g. `"1000"`).
    pub threshold: String,
    /// The finance channel (a key of helio.yaml's `approval.channels`).
    pub channel: String,
    pub timeout_ms: u64,
    /// Escalate to these channels if finance has not decided in time.
    pub escalate_to: Vec<String>,
    pub escalate_after_ms: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tools: vec!["create_payment".into()],
            amount_field: "$.amount".into(),
            threshold: "1000".into(),
            channel: "finance".into(),
            timeout_ms: 10 * 60 * 1000,
            escalate_to: Vec::new(),
            escalate_after_ms: None,
        }
    }
}

/// A problem in the configuration, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Reads the configuration; unknown keys are refused, so a typo is not
/// silently a default.
pub fn parse_config(text: &str) -> Result<Config, Vec<Problem>> {
    let problem = |path: &str, message: &str| Problem {
        path: path.into(),
        message: message.into(),
    };
    let value: Value = serde_json::from_str(text).map_err(|e| vec![problem("", &e.to_string())])?;
    let Value::Object(map) = value else {
        return Err(vec![problem("", "expected a mapping")]);
    };
    let mut config = Config::default();
    let mut problems = Vec::new();
    let strings = |value: &Value| -> Option<Vec<String>> {
        value
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    for (key, value) in &map {
        match key.as_str() {
            "tools" => match strings(value) {
                Some(tools) if !tools.is_empty() => config.tools = tools,
                _ => problems.push(problem("tools", "expected a non-empty list of tool names")),
            },
            "amount_field" => match value.as_str() {
                Some(field) => config.amount_field = field.into(),
                None => problems.push(problem("amount_field", "expected an argument path")),
            },
            "threshold" => match decimal_text(value) {
                Some(threshold) => config.threshold = threshold,
                None => problems.push(problem("threshold", "expected a non-negative decimal")),
            },
            "channel" => match value.as_str() {
                Some(channel) if !channel.is_empty() => config.channel = channel.into(),
                _ => problems.push(problem("channel", "expected a channel name")),
            },
            "timeout_minutes" => match value.as_u64() {
                Some(minutes) if (1..=7 * 24 * 60).contains(&minutes) => {
                    config.timeout_ms = minutes * 60 * 1000
                }
                _ => problems.push(problem("timeout_minutes", "expected 1 to 10080 minutes")),
            },
            "escalate_to" => match strings(value) {
                Some(channels) => config.escalate_to = channels,
                None => problems.push(problem("escalate_to", "expected a list of channel names")),
            },
            "escalate_after_minutes" => match value.as_u64() {
                Some(minutes) if minutes > 0 => {
                    config.escalate_after_ms = Some(minutes * 60 * 1000)
                }
                _ => problems.push(problem(
                    "escalate_after_minutes",
                    "expected minutes above zero",
                )),
            },
            other => problems.push(problem(other, "unknown key")),
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

/// Where a ticket goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub channel: String,
    pub timeout_ms: Option<u64>,
    pub escalate_to: Vec<String>,
    pub escalate_after_ms: Option<u64>,
}

/// Routes a ticket for a call of `tool` whose amount argument is `amount`
/// (as the host read it); `asked` is the channel the policy asked for.
pub fn route(config: &Config, tool: &str, amount: Option<&Value>, asked: Option<&str>) -> Route {
    let over = config.tools.iter().any(|t| t == tool)
        && amount
            .and_then(decimal_text)
            .is_some_and(|a| compare_decimals(&a, &config.threshold) == Ordering::Greater);
    if over {
        return Route {
            channel: config.channel.clone(),
            timeout_ms: Some(config.timeout_ms),
            escalate_to: config.escalate_to.clone(),
            escalate_after_ms: config.escalate_after_ms,
        };
    }
    Route {
        channel: asked.unwrap_or("dashboard").to_owned(),
        timeout_ms: None,
        escalate_to: Vec::new(),
        escalate_after_ms: None,
    }
}

/// A JSON number (as its shortest decimal text) or a numeric string, as
/// plain decimal digits: `1500`, `1000.01`. Negative, exponent-sized or
/// non-numeric values are not amounts.
pub fn decimal_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return None,
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    (!whole.is_empty() && digits(whole) && digits(fraction)).then_some(text)
}

/// Compares two plain decimals exactly, digit by digit (no floating
/// point near the threshold).
pub fn compare_decimals(a: &str, b: &str) -> Ordering {
    let split = |s: &str| {
        let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
        let whole = whole.trim_start_matches('0').to_owned();
        let fraction = fraction.trim_end_matches('0').to_owned();
        (whole, fraction)
    };
    let ((aw, af), (bw, bf)) = (split(a), split(b));
    aw.len()
        .cmp(&bw.len())
        .then_with(|| aw.cmp(&bw))
        .then_with(|| {
            let width = af.len().max(bf.len());
            format!("{af:0<width$}").cmp(&format!("{bf:0<width$}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decimals_compare_exactly() {
        assert_eq!(compare_decimals("1000.01", "1000"), Ordering::Greater);
        assert_eq!(compare_decimals("1000.00", "1000"), Ordering::Equal);
        assert_eq!(compare_decimals("999.999999999", "1000"), Ordering::Less);
        assert_eq!(compare_decimals("01000", "1000"), Ordering::Equal);
        assert_eq!(compare_decimals("10000", "9999.99"), Ordering::Greater);
        assert_eq!(compare_decimals("0.1", "0.09"), Ordering::Greater);
    }

    #[test]
    fn payments_over_the_threshold_go_to_finance() {
        let config = Config::default();
        let to = |tool: &str, amount: Value| route(&config, tool, Some(&amount), None);
        let finance = to("create_payment", json!(1000.01));
        assert_eq!(finance.channel, "finance");
        assert_eq!(finance.timeout_ms, Some(600_000));
        assert_eq!(to("create_payment", json!("2500.00")).channel, "finance");
        assert_eq!(
            to("create_payment", json!(1000)).channel,
            "dashboard",
            "not over"
        );
        assert_eq!(to("create_payment", json!(-5000)).channel, "dashboard");
        assert_eq!(to("create_payment", json!("lots")).channel, "dashboard");
        assert_eq!(
            to("process_refund", json!(5000)).channel,
            "dashboard",
            "not a payment tool"
        );
        assert_eq!(
            route(&config, "create_payment", None, Some("ops")).channel,
            "ops"
        );
    }

    #[test]
    fn configuration_is_checked_key_by_key() {
        let config = parse_config(
            r#"{"tools": ["pay"], "threshold": "250.5", "channel": "fin", "timeout_minutes": 5,
                "escalate_to": ["cfo"], "escalate_after_minutes": 2}"#,
        )
        .expect("valid");
        assert_eq!(config.threshold, "250.5");
        assert_eq!(config.escalate_after_ms, Some(120_000));
        let problems = parse_config(r#"{"threshold": -1, "chanel": "x"}"#).unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["chanel", "threshold"]);
    }
}
