//! Access control on a real daemon: tokens and scopes on every HTTP
//! route, gRPC method and RESP command (each list read from the daemon
//! itself: the OpenAPI document, server reflection, `COMMAND`), revocation
//! ending subscriptions, the refusal to serve beyond loopback without a
//! token, and TLS with clients nobody here wrote.

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::daemon::Daemon;
use crate::{fails, hydra, ok, walk};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Creates a token through the API (the first needs none); its secret.
fn token(c: &Client, d: &Daemon, admin: Option<&str>, name: &str, scopes: &[&str]) -> String {
    let mut req = c
        .post(d.at("/tokens"))
        .json(&json!({"name": name, "scopes": scopes}));
    if let Some(a) = admin {
        req = req.bearer_auth(a);
    }
    let r = req.send().unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "creating token {name}");
    let v: Value = r.json().unwrap();
    v["secret"].as_str().unwrap().to_owned()
}

/// Every route of the OpenAPI document, tried without a token, with a
/// token lacking its scope and with one holding exactly that scope: a
/// route added without a rule, or with a check that lets the wrong token
/// through, fails here.
#[test]
fn every_http_route_needs_its_scope() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let c = client();
    let admin = token(&c, &d, None, "admin", &["admin"]);
    let lacking = token(&c, &d, Some(&admin), "lacking", &["bucket-read:nothing"]);
    token(&c, &d, Some(&admin), "victim", &["read:*"]);
    let put = |path: &str, body: &str| {
        let r = c
            .put(d.at(path))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .unwrap();
        assert!(r.status().is_success(), "PUT {path}: {}", r.status());
    };
    put("/buckets/tbl", "{}");
    let r = c
        .post(d.at("/streams/acct-1"))
        .bearer_auth(&admin)
        .body(r#"{"type":"Opened","data":{}}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let doc: Value = c.get(d.at("/openapi.json")).send().unwrap().json().unwrap();
    let mut holders: std::collections::HashMap<String, String> = Default::default();
    let mut checked = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        let name = if path.starts_with("/tokens/") {
            "victim"
        } else {
            "sub1"
        };
        let mut concrete = path
            .replace("{id}", "acct-1")
            .replace("{version}", "0")
            .replace("{name}", name)
            .replace("{event_id}", "0190b7a4-0000-7000-8000-000000000000")
            .replace("{b}", "tbl")
            .replace("{ref}", &hydra_block::Ref::raw(b"x").to_string())
            .replace("{*key}", "k/1");
        for (method, op) in methods.as_object().unwrap() {
            let scope = op["x-scope"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no x-scope"));
            let bearer = op["security"] == json!([{"bearer": []}]);
            assert_eq!(bearer, scope != "none", "{method} {path}: security");
            let scope = match scope {
                s if s.starts_with("read:{stream}") => {
                    concrete.push_str("?stream=acct-1");
                    "read:acct-1".to_owned()
                }
                s if s.contains("{prefix}") => {
                    concrete.push_str("?prefix=acct-");
                    s.replace("{prefix}", "acct-")
                }
                s => s.replace("{id}", "acct-1").replace("{b}", "tbl"),
            };
            if path.ends_with("/events") {
                concrete.push_str("?timeout_ms=0");
            }
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let send = |bearer: Option<&str>| {
                let mut req = c.request(m.clone(), d.at(&concrete)).body("{}");
                if let Some(b) = bearer {
                    req = req.bearer_auth(b);
                }
                req.send().unwrap().status()
            };
            let what = format!("{method} {concrete} ({scope})");
            match scope.as_str() {
                "none" => {
                    assert!(
                        ["/health", "/openapi.json"].contains(&path.as_str()),
                        "{what}: only health and the API's description are open"
                    );
                    assert!(!matches!(send(None).as_u16(), 401 | 403), "{what}");
                    continue;
                }
                s if s.starts_with("any token") => {
                    assert_eq!(send(None), StatusCode::UNAUTHORIZED, "{what}");
                    assert_eq!(send(Some(&lacking)), StatusCode::OK, "{what}");
                    continue;
                }
                _ => {}
            }
            assert_eq!(send(None), StatusCode::UNAUTHORIZED, "{what}: no token");
            assert_eq!(
                send(Some("hydra_not-a-token")),
                StatusCode::UNAUTHORIZED,
                "{what}: unknown token"
            );
            assert_eq!(
                send(Some(&lacking)),
                StatusCode::FORBIDDEN,
                "{what}: lacking"
            );
            let n = holders.len();
            let holder = holders
                .entry(scope.clone())
                .or_insert_with(|| token(&c, &d, Some(&admin), &format!("t{n}"), &[&scope]))
                .clone();
            let status = send(Some(&holder));
            assert!(
                !matches!(status.as_u16(), 401 | 403),
                "{what}: holding the scope, {status}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 50, "only {checked} routes checked");
    // Refusals are counted.
    let metrics = c
        .get(d.at("/metrics"))
        .bearer_auth(&lacking)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hydra_auth_failures_total "))
        .expect("the failure counter")
        .parse()
        .unwrap();
    assert!(failures >= 3 * 50, "{failures}");
}

/// Runs one of the Python suites; panics with its output unless every
/// check passed.
fn python(script: &str, args: &[&str]) {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .expect("python3 runs (.ci/run installs grpcio and redis-py)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with(" 0 failed"),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_grpc_method_and_resp_command_needs_its_scope() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &["--grpc", "127.0.0.1:0", "--resp", "127.0.0.1:0"],
    );
    let c = client();
    let admin = token(&c, &d, None, "admin", &["admin"]);
    let lacking = token(&c, &d, Some(&admin), "lacking", &["bucket-read:nothing"]);
    let read = token(&c, &d, Some(&admin), "read", &["read:*"]);
    let write = token(&c, &d, Some(&admin), "write", &["write:*"]);
    let delete = token(&c, &d, Some(&admin), "delete", &["delete:*"]);
    let grpc = d.grpc.clone().unwrap();
    python("grpc_auth.py", &[&grpc, &lacking, &read, &write, &delete]);
    let resp = d.resp.clone().unwrap();
    let (host, port) = resp.rsplit_once(':').unwrap();
    python("resp_auth.py", &[host, port, &lacking, &read, &write]);
}

#[test]
fn a_prefix_token_reads_its_streams_and_all_filtered_to_them_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let c = client();
    let admin = token(&c, &d, None, "admin", &["admin"]);
    let reader = token(&c, &d, Some(&admin), "acct-reader", &["read:acct-"]);
    for s in ["acct-1", "acct-2", "audit-1"] {
        let r = c
            .post(d.at(&format!("/streams/{s}")))
            .bearer_auth(&admin)
            .body(r#"{"type":"T","data":{}}"#)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let get = |path: &str| c.get(d.at(path)).bearer_auth(&reader).send().unwrap();
    assert_eq!(get("/streams/acct-2").status(), StatusCode::OK);
    let r = get("/streams/audit-1");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        r.json::<Value>().unwrap()["error"],
        "token acct-reader lacks scope read:audit-1"
    );
    let all: Value = get("/all?prefix=acct-").json().unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let r = get("/all");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        r.json::<Value>().unwrap()["error"],
        "token acct-reader lacks scope read:*"
    );
    assert_eq!(
        get("/all?prefix=a").status(),
        StatusCode::FORBIDDEN,
        "a wider filter"
    );
    let r = c
        .post(d.at("/streams/acct-1"))
        .bearer_auth(&reader)
        .body(r#"{"type":"T","data":{}}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Health stays open, with or without a token.
    assert_eq!(
        c.get(d.at("/health")).send().unwrap().status(),
        StatusCode::OK
    );
}

/// Reads SSE lines until `n` data lines arrived; then waits for the end.
fn sse_until_end(r: reqwest::blocking::Response, n: usize) -> (usize, Duration) {
    let mut lines = BufReader::new(r).lines();
    let mut seen = 0;
    while seen < n {
        let l = lines.next().expect("the stream is open").unwrap();
        if l.starts_with("data:") {
            seen += 1;
        }
    }
    let start = Instant::now();
    for l in lines {
        if l.is_err() {
            break;
        }
    }
    (seen, start.elapsed())
}

/// Waits up to 10 s for `child` to end; panics with `what` if it does not.
fn exits_within(child: &mut std::process::Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn revoking_a_token_ends_its_subscriptions_and_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &["--resp", "127.0.0.1:0", "--grpc", "127.0.0.1:0"],
    );
    let c = client();
    let admin = token(&c, &d, None, "admin", &["admin"]);
    let reader = token(&c, &d, Some(&admin), "reader", &["read:*"]);
    let r = c
        .post(d.at("/streams/feed"))
        .bearer_auth(&admin)
        .body(r#"{"type":"T","data":1}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let sse = c
        .get(d.at("/subscribe/streams/feed?from=0"))
        .bearer_auth(&reader)
        .send()
        .unwrap();
    assert_eq!(sse.status(), StatusCode::OK);
    // A RESP subscription of the same token, through redis-cli.
    let resp = d.resp.clone().unwrap();
    let (host, port) = resp.rsplit_once(':').unwrap();
    let mut cli = Command::new("redis-cli")
        .args([
            "-h",
            host,
            "-p",
            port,
            "-3",
            "--no-auth-warning",
            "-a",
            &reader,
        ])
        .args(["ESUB", "feed", "FROM", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli runs (.ci/run installs redis-tools)");
    // And a gRPC one.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut grpc = rt.block_on(async {
        use crate::grpc::pb;
        let url = format!("http://{}", d.grpc.as_ref().unwrap());
        let mut client = pb::event_store_client::EventStoreClient::connect(url)
            .await
            .unwrap();
        let mut req = tonic::Request::new(pb::SubscribeToStreamRequest {
            stream: "feed".into(),
            from: Some(0),
        });
        req.metadata_mut()
            .insert("authorization", format!("Bearer {reader}").parse().unwrap());
        let mut s = client.subscribe_to_stream(req).await.unwrap().into_inner();
        assert!(s.message().await.unwrap().is_some(), "the first event");
        s
    });
    let revoker = {
        let (c, url, admin) = (c.clone(), d.at("/tokens/reader"), admin.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            let r = c.delete(url).bearer_auth(admin).send().unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
        })
    };
    let (seen, ended_after) = sse_until_end(sse, 1);
    revoker.join().unwrap();
    assert_eq!(seen, 1);
    assert!(ended_after < Duration::from_secs(10), "{ended_after:?}");
    exits_within(&mut cli, "the RESP subscription outlived its token");
    let end = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), grpc.message())
            .await
            .expect("the gRPC subscription outlived its token")
    });
    assert!(matches!(end, Ok(None)), "{end:?}");
    let r = c
        .get(d.at("/streams/feed"))
        .bearer_auth(&reader)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().unwrap()["error"],
        "unknown or revoked token"
    );
}

#[test]
fn tokens_from_the_cli_are_kept_as_hashes_and_shown_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["token", "create", "ops", "--scope", "admin"]);
    let secret = out.lines().last().unwrap().to_owned();
    assert!(secret.starts_with("hydra_"), "{out:?}");
    assert_eq!(out.lines().count(), 1, "only the secret on stdout: {out:?}");
    ok(
        dir.path(),
        &[
            "token",
            "create",
            "reader",
            "--scope",
            "read:acct-",
            "--scope",
            "bucket-read:*",
        ],
    );
    let ls = ok(dir.path(), &["token", "ls"]);
    assert!(ls.contains("ops\tadmin\t"), "{ls}");
    assert!(ls.contains("reader\tread:acct- bucket-read:*\t"), "{ls}");
    assert!(!ls.contains("hydra_"), "never a secret: {ls}");
    let needle = &secret["hydra_".len()..];
    for f in walk(&dir.path().join("data")) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "the secret is in {}",
            f.display()
        );
    }
    assert_eq!(
        fails(dir.path(), &["token", "create", "x", "--scope", "write"]),
        "hydra: scope \"write\": use read:PREFIX, write:PREFIX, delete:PREFIX, bucket-read:BUCKET, bucket-write:BUCKET or admin"
    );
    assert_eq!(
        fails(dir.path(), &["token", "create", "ops", "--scope", "admin"]),
        "hydra: token ops already exists (revoke it first)"
    );
    // Through a daemon: the token it was given, the same commands.
    let d = Daemon::start(dir.path(), &[]);
    let api = ["--api", d.url.as_str()];
    let with = |args: &[&str], token: Option<&str>| {
        let mut cmd = hydra(dir.path());
        cmd.args(api).args(args);
        if let Some(t) = token {
            cmd.env("HYDRA_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let out = with(&["token", "ls"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "hydra: a token is required: send Authorization: Bearer TOKEN\n"
    );
    let out = with(&["token", "ls"], Some(&secret));
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), ls);
    let out = with(&["token", "revoke", "reader"], Some(&secret));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = with(&["--token", &secret, "token", "ls"], None);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("reader"));
    d.stop();
}

/// A daemon on a non-loopback address with no token would serve anyone:
/// it refuses to start, saying how to make one, unless told `auth: none`.
#[test]
fn a_daemon_beyond_loopback_needs_a_token_or_says_auth_none() {
    let dir = tempfile::tempdir().unwrap();
    let out = hydra(dir.path())
        .args(["daemon", "--http", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("hydra: api.http listens on 0.0.0.0:0, beyond loopback, and no API token exists: create one first (hydra --data ")
            && err.contains("token create NAME --scope admin), or set api.auth: none (unsafe)"),
        "{err}"
    );
    // With a token it starts, and asks for it.
    let secret = ok(dir.path(), &["token", "create", "ops", "--scope", "admin"]);
    let d = Daemon::start_with(dir.path(), &["--http", "0.0.0.0:0"]);
    let port = d.url.rsplit(':').next().unwrap().to_owned();
    let local = format!("http://127.0.0.1:{port}");
    let c = client();
    let r = c.get(format!("{local}/streams")).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get(format!("{local}/streams"))
        .bearer_auth(secret.trim())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Revoking the last token does not open the door.
    let r = c
        .delete(format!("{local}/tokens/ops"))
        .bearer_auth(secret.trim())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c.get(format!("{local}/streams")).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    d.stop();
    // `auth: none` is the explicit, unsafe way (a volume without tokens).
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    let config = crate::daemon::config(&open, "", "api:\n  http: 0.0.0.0:0\n  auth: none\n");
    let d = Daemon::start_with(dir.path(), &["--config", &config]);
    let port = d.url.rsplit(':').next().unwrap().to_owned();
    let r = c
        .get(format!("http://127.0.0.1:{port}/streams"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    d.stop();
}

/// A certificate authority and what it signed, as PEM files in `dir`.
struct Pki {
    ca: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

/// A CA named `name` and a certificate for localhost and 127.0.0.1 signed
/// by it (a server's, or a client's for mutual TLS).
fn pki(dir: &std::path::Path, name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let file = |suffix: &str, pem: String| {
        let p = dir.join(format!("{name}-{suffix}"));
        std::fs::write(&p, pem).unwrap();
        p
    };
    Pki {
        ca: file("ca.pem", ca.pem()),
        cert: file("cert.pem", cert.pem()),
        key: file("key.pem", key.serialize_pem()),
    }
}

fn tls_config(dir: &std::path::Path, server: &Pki, client_ca: Option<&std::path::Path>) -> String {
    let mut api = format!(
        "api:\n  grpc: 127.0.0.1:0\n  resp: 127.0.0.1:0\n  tls:\n    cert: {}\n    key: {}\n",
        server.cert.display(),
        server.key.display()
    );
    if let Some(ca) = client_ca {
        api.push_str(&format!("    client_ca: {}\n", ca.display()));
    }
    crate::daemon::config(dir, "", &api)
}

/// HTTP, RESP3 and gRPC over TLS, each with a client nobody here wrote
/// (curl, redis-cli, grpcio) and the CLI; a client trusting another CA is
/// refused everywhere.
#[test]
fn tls_serves_every_api_and_a_wrong_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = pki(dir.path(), "server");
    let other = pki(dir.path(), "other");
    let config = tls_config(dir.path(), &server, None);
    let d = Daemon::start(dir.path(), &["--config", &config]);
    assert!(d.url.starts_with("https://127.0.0.1:"), "{}", d.url);
    let curl = |ca: &std::path::Path| {
        Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(ca)
            .arg(d.at("/health"))
            .output()
            .expect("curl runs")
    };
    let out = curl(&server.ca);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"status\":\"ok\""));
    assert!(
        !curl(&other.ca).status.success(),
        "curl trusting another CA"
    );

    let resp = d.resp.clone().unwrap();
    let (host, port) = resp.rsplit_once(':').unwrap();
    let redis = |ca: &std::path::Path| {
        Command::new("redis-cli")
            .args(["-h", host, "-p", port, "--tls", "--cacert"])
            .arg(ca)
            .arg("PING")
            .output()
            .expect("redis-cli runs")
    };
    let out = redis(&server.ca);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "PONG",
        "{out:?}"
    );
    let out = redis(&other.ca);
    assert_ne!(String::from_utf8_lossy(&out.stdout).trim(), "PONG");

    let grpc = d.grpc.clone().unwrap();
    let grpcio = |ca: &std::path::Path| {
        let script = "import sys, grpc\n\
            ca = open(sys.argv[2], 'rb').read()\n\
            ch = grpc.secure_channel(sys.argv[1], grpc.ssl_channel_credentials(root_certificates=ca), options=[('grpc.ssl_target_name_override', 'localhost')])\n\
            print(len(ch.unary_unary('/hydra.v1.EventStore/Health')(b'', timeout=10)))\n";
        Command::new("python3")
            .args(["-c", script, &grpc])
            .arg(ca)
            .output()
            .expect("python3 runs")
    };
    let out = grpcio(&server.ca);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = grpcio(&other.ca);
    assert!(!out.status.success(), "grpcio trusting another CA");

    // The CLI, given the CA.
    let cli = |ca: &std::path::Path, args: &[&str]| {
        hydra(dir.path())
            .args(["--api", &d.url, "--cacert"])
            .arg(ca)
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(
        &server.ca,
        &["stream", "append", "s", "-t", "T", "--data", "{}"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&other.ca, &["stream", "read", "s"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("hydra: cannot reach the daemon at https://"),
        "{err}"
    );
    d.stop();
}

/// With `client_ca`, a client without a certificate signed by it gets no
/// connection at all.
#[test]
fn mutual_tls_refuses_clients_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = pki(dir.path(), "server");
    let clients = pki(dir.path(), "clients");
    let config = tls_config(dir.path(), &server, Some(&clients.ca));
    let d = Daemon::start(dir.path(), &["--config", &config]);
    let curl = |cert: Option<&Pki>| {
        let mut c = Command::new("curl");
        c.args(["-sS", "--fail", "--cacert"]).arg(&server.ca);
        if let Some(p) = cert {
            c.arg("--cert").arg(&p.cert).arg("--key").arg(&p.key);
        }
        c.arg(d.at("/health")).output().expect("curl runs")
    };
    assert!(!curl(None).status.success(), "no client certificate");
    assert!(
        !curl(Some(&server)).status.success(),
        "a certificate of another CA"
    );
    let out = curl(Some(&clients));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.stop();
}

/// The forms Redis clients authenticate with: `AUTH TOKEN`, `AUTH user
/// TOKEN` and `HELLO 3 AUTH user TOKEN`, through redis-cli.
#[test]
fn resp_clients_authenticate_every_way_redis_clients_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &["--resp", "127.0.0.1:0"]);
    let c = client();
    let writer = token(&c, &d, None, "writer", &["write:*", "read:*"]);
    let resp = d.resp.clone().unwrap();
    let (host, port) = resp.rsplit_once(':').unwrap();
    let session = |input: String, extra: &[&str]| {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", host, "-p", port]).args(extra);
        let out = crate::feed(&mut cmd, input.as_bytes());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = session(format!("AUTH {writer}\nEAPPEND s T\nESVER s\n"), &[]);
    assert!(
        out.starts_with("OK\n") && out.trim_end().ends_with('0'),
        "{out}"
    );
    let out = session(format!("AUTH writer {writer}\nESVER s\n"), &[]);
    assert_eq!(out, "OK\n0\n");
    let out = session(format!("HELLO 3 AUTH writer {writer}\nESVER s\n"), &[]);
    assert!(
        out.contains("server hydra") && out.trim_end().ends_with('0'),
        "{out}"
    );
    let out = session("ESVER s\nAUTH hydra_wrong\nHELLO 3\n".into(), &[]);
    assert_eq!(
        out,
        "NOAUTH Authentication required: send AUTH TOKEN\n\n\
         NOAUTH unknown or revoked token\n\n\
         NOAUTH HELLO must be called with AUTH user TOKEN: a token is required\n\n",
        "{out}"
    );
    // redis-cli's own flags: -a (AUTH) and --user/--pass with -3 (HELLO).
    let out = session("ESVER s\n".into(), &["--no-auth-warning", "-a", &writer]);
    assert_eq!(out, "0\n");
    let out = session(
        "ESVER s\n".into(),
        &[
            "-3",
            "--no-auth-warning",
            "--user",
            "writer",
            "--pass",
            &writer,
        ],
    );
    assert_eq!(out, "0\n");
}

/// `api.metrics: open` lets a scraper in without a token, and nothing
/// else.
#[test]
fn open_metrics_need_no_token_and_open_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::configured(dir.path(), "", "api:\n  metrics: open\n");
    let c = client();
    token(&c, &d, None, "admin", &["admin"]);
    let r = c.get(d.at("/metrics")).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().unwrap().contains("hydra_auth_failures_total 0"));
    assert_eq!(
        c.get(d.at("/streams")).send().unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

/// What was opened while no token existed ends when the first is made:
/// an open door does not stay open for those already inside.
#[test]
fn the_first_token_ends_what_anyone_opened() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &["--resp", "127.0.0.1:0"]);
    let c = client();
    let r = c
        .post(d.at("/streams/feed"))
        .body(r#"{"type":"T","data":1}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let sse = c
        .get(d.at("/subscribe/streams/feed?from=0"))
        .send()
        .unwrap();
    let resp = d.resp.clone().unwrap();
    let (host, port) = resp.rsplit_once(':').unwrap();
    let mut cli = Command::new("redis-cli")
        .args(["-h", host, "-p", port, "-3", "ESUB", "feed", "FROM", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli runs");
    let maker = {
        let (c, url) = (c.clone(), d.at("/tokens"));
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            let r = c
                .post(url)
                .json(&json!({"name": "first", "scopes": ["admin"]}))
                .send()
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
        })
    };
    let (seen, ended_after) = sse_until_end(sse, 1);
    maker.join().unwrap();
    assert_eq!(seen, 1);
    assert!(ended_after < Duration::from_secs(10), "{ended_after:?}");
    exits_within(&mut cli, "the RESP subscription outlived the open door");
}

/// A refused request over HTTP/2 is answered after its body is read, so
/// the client sees the refusal, not a reset stream (curl: "Stream error
/// in the HTTP/2 framing layer" while it still sent the body).
#[test]
fn a_refused_http2_request_with_a_body_gets_its_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let c = client();
    let admin = token(&c, &d, None, "admin", &["admin"]);
    let reader = token(&c, &d, Some(&admin), "reader", &["read:*"]);
    let body = dir.path().join("body.json");
    let pad = "x".repeat(512 << 10);
    std::fs::write(
        &body,
        format!(r#"{{"type":"Placed","data":{{"pad":"{pad}"}}}}"#),
    )
    .unwrap();
    for _ in 0..5 {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--http2-prior-knowledge",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{http_version}",
            ])
            .args(["-H", &format!("Authorization: Bearer {reader}")])
            .args(["--data-binary", &format!("@{}", body.display())])
            .arg(d.at("/streams/orders-2"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "403 2");
    }
}

/// A whole store's export is the admin's, whatever streams a token reads.
#[test]
fn exporting_everything_needs_admin() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let c = client();
    let admin = token(&c, &d, None, "admin", &["admin"]);
    let reader = token(&c, &d, Some(&admin), "reader", &["read:*"]);
    let r = c
        .post(d.at("/streams/acct-1"))
        .bearer_auth(&admin)
        .body(r#"{"type":"Opened","data":{}}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let export = |token: &str| {
        c.get(d.at("/export?all=true"))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    assert_eq!(export(&reader).status(), StatusCode::FORBIDDEN);
    let r = export(&admin);
    assert_eq!(r.status(), StatusCode::OK);
    let car = r.bytes().unwrap();
    let roots = hydra_block::CarReader::new(&car[..]).unwrap().roots().len();
    assert_eq!(roots, 2, "one stream, and the order of `$all`");
}
