//! The OpenAPI document: complete, valid, and true of the daemon, as
//! schemathesis (a client nobody here wrote) finds it with data the
//! document allows and data it forbids.

use std::collections::BTreeSet;
use std::process::Command;

use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::daemon::Daemon;

fn document(d: &Daemon) -> Value {
    Client::new()
        .get(d.at("/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                out.insert(r.clone());
            }
            o.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// OpenAPI 3.1 with every reference resolved, every path parameter
/// declared (and none the path lacks), no router syntax in a path, and
/// for every operation: who may call it, what it answers, and the error
/// body of its refusals.
#[test]
fn the_document_declares_every_parameter_body_and_answer() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let doc = document(&d);
    assert_eq!(doc["openapi"], "3.1.0");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut all = BTreeSet::new();
    refs(&doc, &mut all);
    for r in &all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r}: not a schema reference"));
        assert!(schemas.contains_key(name), "{r} resolves to nothing");
    }
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(!path.contains('*') && !path.contains(':'), "{path}");
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            operations += 1;
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, in_path, "{at}: path parameters");
            assert!(op["summary"].is_string(), "{at}: summary");
            assert!(op["x-scope"].is_string(), "{at}: x-scope");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{at}: no success answer"
            );
            assert_eq!(
                responses["default"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{at}: errors"
            );
            if op["x-scope"] != "none" {
                assert!(responses.contains_key("401") && responses.contains_key("403"));
            }
            for (status, r) in responses {
                for (media, content) in r["content"].as_object().into_iter().flatten() {
                    assert!(
                        content["schema"].is_object(),
                        "{at} {status} {media}: no schema"
                    );
                }
            }
        }
    }
    assert_eq!(operations, 55, "every route is documented");
    // The types answers are made of, with their fields.
    assert_eq!(
        schemas["AppendResult"]["required"],
        json!([
            "first_version",
            "version",
            "first_position",
            "position",
            "partition",
            "first_partition_sequence"
        ])
    );
    assert_eq!(
        schemas["AppendResult"]["properties"]["position"]["maximum"],
        json!(u64::MAX)
    );
}

/// schemathesis runs every operation (subscriptions too) with generated
/// data, both what the document allows and what it forbids, and every
/// check it has: no 5xx, no answer the document does not describe (status,
/// content type, headers, body), no forbidden data accepted, no allowed
/// data refused, no route that skips its token. What it is told to expect
/// beyond the document is in tests/openapi/schemathesis.toml, with why.
#[test]
fn schemathesis_finds_nothing_wrong() {
    let dir = tempfile::tempdir().unwrap();
    // A short request timeout: a subscription read waits at most half of it.
    let d = Daemon::configured(dir.path(), "", "limits:\n  request_timeout_secs: 4\n");
    let token = Client::new()
        .post(d.at("/tokens"))
        .json(&json!({"name": "schemathesis", "scopes": ["admin"]}))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/openapi/schemathesis.toml"
    );
    let out = Command::new("python3")
        .args(["-m", "schemathesis.cli", "--config-file", config, "run"])
        .arg(d.at("/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--seed", "1", "--max-examples", "10"])
        .current_dir(dir.path())
        .env("COLUMNS", "120")
        .output()
        .expect("python3 runs (.ci/run installs schemathesis)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Every operation but the revocation the config leaves out.
    let tested: usize = stdout
        .split("Tested: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no count of operations tested:\n{stdout}"));
    assert!(tested >= 53, "{tested} operations tested:\n{stdout}");
}
