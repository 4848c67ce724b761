//! The component's edge: helio:governance@0.2.0, world
//! `spend-extractor-plugin`.
#![allow(unsafe_code)] // wit-bindgen's ABI glue

use std::cell::RefCell;

wit_bindgen::generate!({ path: "../../wit", world: "spend-extractor-plugin" });

use exports::helio::governance::spend_extractor::Guest;
use helio::governance::types::{ConfigError, JsonValue, Spend, ToolCall};

thread_local! {
    static CONFIG: RefCell<Option<super::Config>> = const { RefCell::new(None) };
}

struct Host<'a>(&'a ToolCall);

impl super::Arguments for Host<'_> {
    fn at(&self, path: &str) -> Option<super::Field> {
        Some(match self.0.argument(path)? {
            JsonValue::Number(text) => super::Field::Number(text),
            JsonValue::Text(text) => super::Field::Text(text),
            _ => super::Field::Other,
        })
    }

    fn list(&self, path: &str) -> Option<Vec<serde_json::Value>> {
        match self.0.argument(path)? {
            JsonValue::Structured(text) => serde_json::from_str::<serde_json::Value>(&text)
                .ok()?
                .as_array()
                .cloned(),
            _ => None,
        }
    }
}

struct Extractor;

impl Guest for Extractor {
    fn configure(config_json: String) -> Result<(), Vec<ConfigError>> {
        let config = serde_json::from_str::<super::Config>(&config_json).map_err(|e| {
            vec![ConfigError {
                path: String::new(),
                message: e.to_string(),
            }]
        })?;
        CONFIG.with(|c| *c.borrow_mut() = Some(config));
        Ok(())
    }

    fn extract(call: &ToolCall) -> Result<Option<Spend>, String> {
        CONFIG.with(|c| {
            let config = c.borrow();
            let config = config.as_ref().ok_or("not configured")?;
            let read = super::extract(config, &Host(call))?;
            Ok(read.map(|(amount, currency)| Spend { amount, currency }))
        })
    }
}

export!(Extractor);
