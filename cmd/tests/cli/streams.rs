use crate::{fails, ok, run};

fn lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn append_read_all_version_ls_delete() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(
        ok(
            d,
            &[
                "stream",
                "append",
                "order-1",
                "-t",
                "Placed",
                "-d",
                r#"{"total":42}"#,
                "-e",
                "no_stream"
            ]
        ),
        "version 0 position 0\n"
    );
    ok(
        d,
        &[
            "stream",
            "append",
            "order-1",
            "-t",
            "Paid",
            "-d",
            r#"{"amount":42}"#,
            "-e",
            "0",
        ],
    );
    ok(
        d,
        &[
            "stream",
            "append",
            "user-1",
            "-t",
            "Joined",
            "--metadata",
            r#"{"by":"cli"}"#,
        ],
    );
    assert_eq!(
        fails(d, &["stream", "append", "order-1", "-t", "Paid", "-e", "0"]),
        "hydra: stream order-1 is at version 1, expected 0"
    );
    let read = lines(&ok(d, &["stream", "read", "order-1", "--json"]));
    assert_eq!(read.len(), 2);
    assert_eq!(read[1]["data"]["amount"], 42);
    assert_eq!(read[1]["type"], "Paid");
    let back = lines(&ok(
        d,
        &[
            "stream",
            "read",
            "order-1",
            "--json",
            "--backward",
            "-n",
            "1",
        ],
    ));
    assert_eq!(back[0]["version"], 1);
    assert_eq!(
        ok(d, &["stream", "read", "order-1", "--from", "1"]),
        "order-1\t1\t1\tPaid\t{\"amount\":42}\n"
    );
    let all = lines(&ok(d, &["stream", "all", "--json"]));
    assert_eq!(
        all.iter()
            .map(|e| e["position"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let users = lines(&ok(d, &["stream", "all", "--json", "--prefix", "user"]));
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["metadata"]["by"], "cli");
    let paid = lines(&ok(
        d,
        &["stream", "all", "--json", "-t", "Paid", "-t", "Joined"],
    ));
    assert_eq!(paid.len(), 2);
    assert_eq!(ok(d, &["stream", "version", "order-1"]), "1\n");
    assert_eq!(
        ok(d, &["stream", "ls"]),
        "order-1\t1\tdefault\t\nuser-1\t0\tdefault\t\n"
    );
    let id = read[0]["id"].as_str().unwrap();
    let got: serde_json::Value = serde_json::from_str(&ok(d, &["event", "get", id])).unwrap();
    assert_eq!(got["data"]["total"], 42);

    assert_eq!(ok(d, &["stream", "delete", "order-1"]), "deleted order-1\n");
    assert_eq!(
        fails(d, &["stream", "read", "order-1"]),
        "hydra: stream order-1 does not exist"
    );
    ok(
        d,
        &[
            "stream",
            "append",
            "order-1",
            "-t",
            "Reopened",
            "-e",
            "no_stream",
        ],
    );
    assert_eq!(ok(d, &["stream", "version", "order-1"]), "2\n");
    ok(d, &["stream", "delete", "order-1", "--hard"]);
    assert_eq!(
        fails(d, &["stream", "append", "order-1", "-t", "X"]),
        "hydra: stream order-1 is deleted (tombstoned) and can never be written or read again"
    );
    assert!(ok(d, &["stream", "scavenge"]).starts_with("scavenged 3 events"));
    assert_eq!(
        ok(d, &["stream", "reindex"]),
        "reindexed 1 events in 2 streams\n"
    );
    let out = run(d, &["stream", "append", "$all", "-t", "X"], b"");
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad stream id is a usage error"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("ids starting with '$' are reserved for system streams")
    );
}

#[test]
fn proofs_verify_from_a_pipe_and_tampering_fails() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..300 {
        let data = format!(r#"{{"i": {i}, "spaced":  true}}"#);
        ok(
            d,
            &["stream", "append", "ledger", "-t", "Entry", "-d", &data],
        );
        if i == 0 {
            ok(d, &["stream", "append", "other", "-t", "Noise"]);
        }
    }
    let proof = ok(d, &["stream", "prove", "ledger", "123"]);
    let out = run(d, &["stream", "verify"], proof.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok: ledger version 123 is in the head of length 300\n"
    );
    let mut v: serde_json::Value = serde_json::from_str(&proof).unwrap();
    v["event"]["type"] = "Forged".into();
    let out = run(d, &["stream", "verify"], v.to_string().as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "hydra: proof rejected: Merkle path does not lead to the head's root\n"
    );
    let mut v: serde_json::Value = serde_json::from_str(&proof).unwrap();
    v["head"]["length"] = 301.into();
    let out = run(d, &["stream", "verify"], v.to_string().as_bytes());
    assert_eq!(out.status.code(), Some(1));
    // Another signer's key is not trusted.
    let out = run(
        d,
        &["stream", "verify", "--signer", &"ab".repeat(32)],
        proof.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    let consistency = ok(d, &["stream", "prove", "ledger", "--from-length", "17"]);
    let out = run(d, &["stream", "verify"], consistency.as_bytes());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok: the head of length 17 is a prefix of the head of length 300\n"
    );
    let head: serde_json::Value =
        serde_json::from_str(&ok(d, &["stream", "head", "ledger"])).unwrap();
    assert_eq!(head["length"], 300);
    assert_eq!(head["signature"].as_str().unwrap().len(), 128);
    let old: serde_json::Value =
        serde_json::from_str(&ok(d, &["stream", "head", "ledger", "--at-length", "17"])).unwrap();
    assert_eq!(
        old["root"],
        serde_json::from_str::<serde_json::Value>(&consistency).unwrap()["old_head"]["root"]
    );
    let at = ok(
        d,
        &["stream", "read", "ledger", "--at-length", "2", "--backward"],
    );
    assert_eq!(at.lines().count(), 2);
}

#[test]
fn snapshots_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..10 {
        ok(
            d,
            &[
                "stream",
                "append",
                "acct",
                "-t",
                "Deposited",
                "-d",
                &format!("{{\"n\":{i}}}"),
            ],
        );
    }
    ok(
        d,
        &["snapshot", "save", "acct", "4", "-d", r#"{"balance":5}"#],
    );
    ok(
        d,
        &["snapshot", "save", "acct", "8", "-d", r#"{"balance":9}"#],
    );
    assert_eq!(ok(d, &["snapshot", "load", "acct"]), r#"{"balance":9}"#);
    assert_eq!(
        ok(d, &["snapshot", "load", "acct", "--at", "7"]),
        r#"{"balance":5}"#
    );
    assert_eq!(ok(d, &["snapshot", "ls", "acct"]).lines().count(), 2);
    assert_eq!(
        ok(d, &["snapshot", "rm", "acct", "4"]),
        "removed snapshot of acct at version 4\n"
    );
    assert_eq!(
        fails(d, &["snapshot", "load", "acct", "--at", "7"]),
        "hydra: no snapshot of stream acct at or before version 7"
    );
    assert_eq!(
        ok(d, &["snapshot", "rm", "acct", "--all"]),
        "removed 1 snapshots of acct\n"
    );
    ok(d, &["stream", "meta", "acct", "--max-count", "3"]);
    assert_eq!(ok(d, &["stream", "read", "acct"]).lines().count(), 3);
}
