//! `router`: sends each record, unchanged, to a named output chosen by the
//! value of one field of its JSON value.
//!
//! # Configuration
//!
//! | key | required | meaning |
//! | --- | --- | --- |
//! | `field` | yes | the field of the value to route on |
//! | `routes` | yes | `value=output` pairs, comma-separated: `EU=europe,US=americas,CA=americas` |
//! | `default` | no | the output for records that match no route; without it they are rejected |
//!
//! The outputs, in order, are the distinct route targets as they first
//! appear in `routes`, then `default` if it is not one of them; the stage
//! maps each to a topic. A field matches a route when its text equals the
//! route's value: a JSON string without its quotes, or a number, `true`,
//! `false` as written.
//!
//! # Rejections
//!
//! | reason | when |
//! | --- | --- |
//! | `record has no value` | a tombstone |
//! | ``value is not a JSON object: ...`` | with the parser's message |
//! | ``no route for field `region` = `XX` `` | no match and no `default` |
//! | ``value has no field `region` `` | field absent or null, and no `default` |
//! | ``field `region` must be a string, number or boolean, found an object`` | an object or array, and no `default` |

use std::collections::HashMap;

use partita_sdk::{Config, ConfigError, Emitter, Output, Processor, Record, Reject};
use serde_json::Value;

/// Routes records by a field of their JSON value.
pub struct Router {
    field: String,
    routes: HashMap<String, Output>,
    default: Option<Output>,
    outputs: Vec<String>,
}

/// Parses `routes` into (value, target) pairs.
fn parse_routes(text: &str) -> Result<Vec<(&str, &str)>, ConfigError> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (i, entry) in text.split(',').map(str::trim).enumerate() {
        let n = i + 1;
        if entry.is_empty() {
            return Err(ConfigError::new("routes", format!("entry {n} is empty")));
        }
        let Some((value, target)) = entry.split_once('=') else {
            return Err(ConfigError::new(
                "routes",
                format!("entry {n} `{entry}` has no `=`"),
            ));
        };
        let (value, target) = (value.trim(), target.trim());
        if value.is_empty() || target.is_empty() {
            return Err(ConfigError::new(
                "routes",
                format!("entry {n} `{entry}` needs value=output"),
            ));
        }
        if pairs.iter().any(|(v, _)| *v == value) {
            return Err(ConfigError::new(
                "routes",
                format!("value `{value}` is routed twice"),
            ));
        }
        pairs.push((value, target));
    }
    Ok(pairs)
}

impl Processor for Router {
    fn init(config: &Config) -> Result<Self, String> {
        config.check_keys(&["field", "routes", "default"])?;
        let field = config.require("field")?.trim().to_string();
        let pairs = parse_routes(config.require("routes")?)?;
        let mut outputs: Vec<String> = Vec::new();
        let mut output = |name: &str| match outputs.iter().position(|o| o == name) {
            Some(i) => Output::at(i as u32),
            None => {
                outputs.push(name.to_string());
                Output::at(outputs.len() as u32 - 1)
            }
        };
        let routes = pairs
            .iter()
            .map(|(value, target)| (value.to_string(), output(target)))
            .collect();
        let default = match config.get("default").map(str::trim) {
            None => None,
            Some("") => {
                return Err(ConfigError::new(
                    "default",
                    "is empty; leave it out to reject unmatched records",
                )
                .into());
            }
            Some(name) => Some(output(name)),
        };
        Ok(Router {
            field,
            routes,
            default,
            outputs,
        })
    }

    fn outputs(&self) -> Vec<String> {
        self.outputs.clone()
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter<'_>) -> Result<(), Reject> {
        let value = record.value().ok_or("record has no value")?;
        let mut object: serde_json::Map<String, Value> = serde_json::from_slice(value)
            .map_err(|e| Reject::new(format!("value is not a JSON object: {e}")))?;
        let matched = match object.remove(&self.field) {
            None | Some(Value::Null) => Err(format!("value has no field `{}`", self.field)),
            Some(Value::String(s)) => self.route(&s),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => self.route(&v.to_string()),
            Some(v) => {
                let kind = if v.is_object() {
                    "an object"
                } else {
                    "an array"
                };
                Err(format!(
                    "field `{}` must be a string, number or boolean, found {kind}",
                    self.field
                ))
            }
        };
        match matched.map_err(|reason| self.default.ok_or(reason)) {
            Ok(output) | Err(Ok(output)) => {
                out.forward_to(output);
                Ok(())
            }
            Err(Err(reason)) => Err(Reject::new(reason)),
        }
    }
}

impl Router {
    fn route(&self, text: &str) -> Result<Output, String> {
        self.routes
            .get(text)
            .copied()
            .ok_or_else(|| format!("no route for field `{}` = `{text}`", self.field))
    }
}

partita_sdk::export!(Router);

#[cfg(test)]
mod tests {
    use super::*;
    use partita_sdk::testing::{Harness, TestRecord};

    const ROUTES: [(&str, &str); 2] = [
        ("field", "region"),
        (
            "routes",
            "EU=europe, US=americas,CA=americas , 1=numbered,true=flagged",
        ),
    ];

    fn harness(extra: &[(&str, &str)]) -> Harness<Router> {
        let config: Vec<(&str, &str)> = ROUTES.iter().chain(extra).copied().collect();
        Harness::new(&config).unwrap()
    }

    fn routed(h: &mut Harness<Router>, value: &str) -> Result<String, String> {
        let r = h.run_one(
            TestRecord::new()
                .key("k")
                .value(value)
                .header("h", "v")
                .timestamp(3),
        );
        match r.rejection() {
            Some(reason) => Err(reason.to_string()),
            None => {
                let o = &r.outputs()[0];
                assert_eq!(
                    (o.key_str(), o.value_str(), o.timestamp, o.headers.len()),
                    ("k", value, 3, 1)
                );
                Ok(o.output.clone())
            }
        }
    }

    #[test]
    fn outputs_are_the_distinct_targets_then_the_default() {
        assert_eq!(
            harness(&[]).outputs(),
            ["europe", "americas", "numbered", "flagged"]
        );
        assert_eq!(
            harness(&[("default", "rest")]).outputs(),
            ["europe", "americas", "numbered", "flagged", "rest"]
        );
        assert_eq!(
            harness(&[("default", "europe")]).outputs(),
            ["europe", "americas", "numbered", "flagged"]
        );
    }

    #[test]
    fn records_go_unchanged_to_their_route() {
        let mut h = harness(&[]);
        assert_eq!(
            routed(&mut h, r#"{"region":"EU","amount":1}"#),
            Ok("europe".into())
        );
        assert_eq!(routed(&mut h, r#"{"region":"US"}"#), Ok("americas".into()));
        assert_eq!(routed(&mut h, r#"{"region":"CA"}"#), Ok("americas".into()));
        assert_eq!(routed(&mut h, r#"{"region":1}"#), Ok("numbered".into()));
        assert_eq!(routed(&mut h, r#"{"region":true}"#), Ok("flagged".into()));
    }

    #[test]
    fn unmatched_records_are_rejected_without_a_default() {
        let mut h = harness(&[]);
        assert_eq!(
            routed(&mut h, r#"{"region":"XX"}"#),
            Err("no route for field `region` = `XX`".into())
        );
        assert_eq!(
            routed(&mut h, r#"{"region":"eu"}"#),
            Err("no route for field `region` = `eu`".into())
        );
        assert_eq!(
            routed(&mut h, r#"{"region":1.0}"#),
            Err("no route for field `region` = `1.0`".into())
        );
        assert_eq!(
            routed(&mut h, r#"{"other":"EU"}"#),
            Err("value has no field `region`".into())
        );
        assert_eq!(
            routed(&mut h, r#"{"region":null}"#),
            Err("value has no field `region`".into())
        );
        assert_eq!(
            routed(&mut h, r#"{"region":{"code":"EU"}}"#),
            Err("field `region` must be a string, number or boolean, found an object".into())
        );
    }

    #[test]
    fn unmatched_records_go_to_the_default() {
        let mut h = harness(&[("default", "rest")]);
        assert_eq!(routed(&mut h, r#"{"region":"XX"}"#), Ok("rest".into()));
        assert_eq!(routed(&mut h, r#"{"other":1}"#), Ok("rest".into()));
        assert_eq!(routed(&mut h, r#"{"region":[1]}"#), Ok("rest".into()));
        assert_eq!(routed(&mut h, r#"{"region":"EU"}"#), Ok("europe".into()));
    }

    #[test]
    fn values_that_are_not_json_objects_are_rejected_even_with_a_default() {
        let mut h = harness(&[("default", "rest")]);
        assert_eq!(
            routed(&mut h, "EU"),
            Err("value is not a JSON object: expected value at line 1 column 1".into())
        );
        assert_eq!(
            routed(&mut h, r#"["EU"]"#),
            Err("value is not a JSON object: invalid type: sequence, expected a map at line 1 column 0".into())
        );
        assert_eq!(
            h.run_one(TestRecord::new().key("k")).rejection(),
            Some("record has no value")
        );
    }

    #[test]
    fn bad_configuration_is_refused_naming_the_key() {
        let err = |config: &[(&str, &str)]| Harness::<Router>::new(config).err().unwrap();
        assert_eq!(
            err(&[("routes", "a=b")]),
            "config key `field`: is required but missing"
        );
        assert_eq!(
            err(&[("field", "f")]),
            "config key `routes`: is required but missing"
        );
        assert_eq!(
            err(&[("field", "f"), ("routes", "a=b,c")]),
            "config key `routes`: entry 2 `c` has no `=`"
        );
        assert_eq!(
            err(&[("field", "f"), ("routes", "a=b,,c=d")]),
            "config key `routes`: entry 2 is empty"
        );
        assert_eq!(
            err(&[("field", "f"), ("routes", "a=")]),
            "config key `routes`: entry 1 `a=` needs value=output"
        );
        assert_eq!(
            err(&[("field", "f"), ("routes", "a=b,a=c")]),
            "config key `routes`: value `a` is routed twice"
        );
        assert_eq!(
            err(&[("field", "f"), ("routes", "a=b"), ("default", " ")]),
            "config key `default`: is empty; leave it out to reject unmatched records"
        );
        assert_eq!(
            err(&[("field", "f"), ("routes", "a=b"), ("rule", "x")]),
            "config key `rule`: unknown key (known keys: field, routes, default)"
        );
    }
}
