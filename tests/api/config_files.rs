//! Every file in `config/` parses; the CLI reports every problem with its path and exits 2.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn every_config_file_is_valid() {
    let base = repo("config/default.toml");
    let mut checked = 0;
    for entry in std::fs::read_dir(repo("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let layered = (path != base).then_some(path.as_path());
            switchboard::config::load(Some(&base), layered, &BTreeMap::new())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn check_config_lists_every_problem_with_its_path() {
    let dir = std::env::temp_dir().join(format!("sb-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        r#"
[server]
bind = "not an address"
[tenants.demo]
entry = "nowhere"
default_queue = "ghost"
[tenants.demo.ai]
base_url = "ftp://x"
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["check-config", "--config", bad.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for path in ["server.bind", "tenants.demo.entry", "tenants.demo.default_queue", "tenants.demo.ai.base_url"] {
        assert!(err.contains(path), "missing {path} in:\n{err}");
    }
    let good = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("check-config")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(good.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&good.stdout).trim(), "ok");
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "[server]\nbindd = \"x\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["check-config", "--config", unknown.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `bindd`"));
    std::fs::remove_dir_all(dir).ok();
}

#[actix_web::test]
async fn missing_channel_secrets_disable_the_channel_with_one_warning() {
    let base = repo("config/default.toml");
    let env = BTreeMap::new();
    let settings = switchboard::config::load(Some(&base), None, &env).unwrap();
    let wiring = switchboard::config::build_tenants(&settings, &env).unwrap();
    assert_eq!(wiring.warnings.len(), 3, "{:?}", wiring.warnings);
    assert!(wiring.warnings[0].contains("whatsapp channel main disabled"));
    assert!(wiring.channels.whatsapp.is_empty() && wiring.channels.telegram.is_empty());
}

#[test]
fn several_redis_urls_need_cluster_mode_and_a_cluster_has_database_0_only() {
    let base = repo("config/default.toml");
    let load = |url: &str, cluster: &str| {
        let env: BTreeMap<String, String> = [
            ("SWITCHBOARD__BACKEND__KIND", "redis"),
            ("SWITCHBOARD__BACKEND__REDIS__URL", url),
            ("SWITCHBOARD__BACKEND__REDIS__CLUSTER", cluster),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        switchboard::config::load(Some(&base), None, &env).map(|s| s.backend.redis.cluster).map_err(|e| e.to_string())
    };
    let seeds = "redis://10.0.0.1:7000,redis://:pw@10.0.0.2:7000";
    let err = load(seeds, "false").unwrap_err();
    assert!(err.contains("backend.redis.url") && err.contains("cluster = true"), "{err}");
    assert!(!err.contains(":pw@"), "no password in messages: {err}");
    assert_eq!(load(seeds, "true"), Ok(true), "a list of cluster nodes");
    assert_eq!(load("redis://10.0.0.1:7000", "true"), Ok(true), "one seed node is enough");
    let err = load("redis://10.0.0.1:7000/2", "true").unwrap_err();
    assert!(err.contains("database 0"), "{err}");
    let err = load("redis://10.0.0.1:7000,http://x", "true").unwrap_err();
    assert!(err.contains("expected redis://"), "{err}");
}
