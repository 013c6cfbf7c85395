//! The OpenAPI document of `/api` against the running routes: the same operations as the router
//! (none missing, none extra, no other method answered), and schemathesis — pinned in
//! `tests/interop/requirements.txt`, installed by `tests/interop/setup.sh` — sending generated
//! requests, valid and invalid, and checking every answer's status, content type and body
//! against the document.

use crate::helpers::*;
use crate::subprocess::run;
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use switchboard::routes::api::{OPENAPI, routes};

/// How long schemathesis may run (it takes about 20 s here).
const SCHEMATHESIS_TIMEOUT: Duration = Duration::from_secs(120);
/// Fixed, so a failure found once is found again; change it to explore other inputs.
const SCHEMATHESIS_SEED: &str = "20260801";
/// The checks run on every answer.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

fn document() -> Value {
    serde_json::from_str(OPENAPI).expect("the OpenAPI document is JSON")
}

/// Every `(METHOD, path)` the document describes.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut ops = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys().filter(|k| *k != "parameters") {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

/// The example conversation id the document gives for `{id}`; the tests create that conversation.
fn example_id(doc: &Value) -> String {
    let param = &doc["paths"]["/api/conversations/{id}"]["parameters"][0];
    assert_eq!(param["name"], "id");
    param["example"].as_str().expect("an example id").to_owned()
}

/// A hub whose new conversations wait in `vendas`, with the document's example conversation.
async fn app_with_example_conversation(doc: &Value) -> TestApp {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "vendas")]).await;
    let id = example_id(doc);
    let phone = id.rsplit(':').next().unwrap();
    assert_eq!(app.wa_conversation(phone).as_str(), id, "the example id is a WhatsApp conversation of demo");
    assert_eq!(app.wa_text(phone, "wamid.OPENAPI-1", "Oi, quero falar com alguém").await.status(), 200);
    eventually(Duration::from_secs(5), || async { app.state_of(&app.wa_conversation(phone)).await })
        .await
        .expect("the example conversation exists");
    app
}

#[test]
fn the_document_describes_exactly_the_routers_operations() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let router: BTreeSet<(String, String)> = routes().map(|(m, p)| (m.to_owned(), p)).collect();
    assert_eq!(operations(&doc), router, "document (left) and router (right) differ");
    // Every operation needs the bearer token except the document itself.
    assert_eq!(doc["security"], serde_json::json!([{ "bearer": [] }]));
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let public = path == "/api/openapi.json";
        assert_eq!(op["security"] == serde_json::json!([]), public, "{method} {path}: security");
        assert_eq!(op["responses"].get("401").is_some(), !public, "{method} {path}: documents its 401");
        assert!(op["operationId"].is_string() && op["summary"].is_string(), "{method} {path}: named and summarised");
    }
    // Every reference points at something.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "dangling reference {r}");
    }
}

#[actix_web::test]
async fn every_documented_operation_is_routed_and_no_other_method_is() {
    let doc = document();
    let app = app_with_example_conversation(&doc).await;
    let id = example_id(&doc);
    let ops = operations(&doc);
    let paths: BTreeSet<&String> = ops.iter().map(|(_, p)| p).collect();
    for path in paths {
        let url = format!("{}{}", app.url, path.replace("{id}", &id));
        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let documented = ops.contains(&(method.to_string(), path.clone()));
            let mut req = app.http.request(method.clone(), &url).bearer_auth(ADMIN_TOKEN);
            if method == Method::POST {
                req = req.json(&serde_json::json!({}));
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or_else(|e| panic!("{method} {path}: not JSON: {e}"));
            if documented {
                assert!(![404, 405].contains(&status), "{method} {path} is documented but answers {status}: {body}");
            } else {
                assert_eq!(status, 405, "{method} {path} is not documented: {body}");
                assert_eq!(body["error"]["code"], "method_not_allowed");
            }
        }
    }
}

/// The schemathesis executable from `tests/interop/setup.sh` (through `.cache/interop/env.sh`),
/// or a failure that says how to get it.
fn schemathesis() -> PathBuf {
    let Some(path) = std::env::var_os("SCHEMATHESIS").filter(|v| !v.is_empty()).map(PathBuf::from) else {
        panic!(
            "SCHEMATHESIS is not set: the OpenAPI check needs the pinned schemathesis. Run `scripts/test.sh`, or run \
             `tests/interop/setup.sh` and `source .cache/interop/env.sh` before `cargo test`."
        );
    };
    assert!(path.exists(), "SCHEMATHESIS={} does not exist: run `tests/interop/setup.sh`", path.display());
    path
}

#[actix_web::test]
async fn schemathesis_finds_every_answer_true_to_the_document() {
    let schemathesis = schemathesis();
    let doc = document();
    let app = app_with_example_conversation(&doc).await;
    // The agent the examples assign to: online, so assignments can succeed as well as fail.
    app.agent_online("vendas", "ana", 5).await;
    let workdir = std::env::temp_dir().join(format!("sb-schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&workdir).unwrap();
    let mut cmd = Command::new(schemathesis);
    cmd.current_dir(&workdir)
        .arg("run")
        .arg(format!("{}/api/openapi.json", app.url))
        .arg("--header")
        .arg(format!("Authorization: Bearer {ADMIN_TOKEN}"))
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "50", "--seed", SCHEMATHESIS_SEED, "--workers", "1"])
        .args(["--generation-database", "none", "--request-timeout", "10", "--no-color"])
        .env("PYTHONUNBUFFERED", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false");
    let finished = run(cmd, SCHEMATHESIS_TIMEOUT).await;
    let (success, output) = (finished.success, finished.describe());
    std::fs::remove_dir_all(&workdir).ok();
    assert!(success, "schemathesis found answers that differ from the document:\n{output}");
    println!("{output}");
}
