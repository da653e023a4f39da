//! The README's quick start, run as written: the commands are read from
//! README.md itself, so the text and this test cannot drift apart. Only
//! what a test cannot take as it is gets replaced, each named below: the
//! daemon's port (8080 may be taken; `HYDRA_HTTP` picks a free one, and
//! the commands after it get that one), `curl -N`'s endless stream (cut
//! after two seconds), and the ref the README elides as `bafkr4i...` (the
//! one the line before printed).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The `sh` blocks of the README's "Quick start" section, each a list of
/// its lines.
fn quick_start() -> Vec<Vec<String>> {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("\n## Quick start\n")
        .expect("a Quick start section");
    let section = &readme[start + 1..];
    let section = &section[..section.find("\n## ").expect("a section after it")];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```sh" {
            let mut block: Vec<String> = Vec::new();
            let mut continued = false;
            for l in lines.by_ref().take_while(|l| l.trim() != "```") {
                match block.last_mut() {
                    // A line ending in `\` goes on in the next one.
                    Some(last) if continued => last.push_str(l),
                    _ if l.trim().is_empty() => {}
                    _ => block.push(l.to_owned()),
                }
                continued = l.trim_end().ends_with('\\');
                if continued && let Some(last) = block.last_mut() {
                    last.truncate(last.trim_end().len() - 1);
                }
            }
            blocks.push(block);
        }
    }
    blocks
}

/// `sh -c SCRIPT` in `dir`, with the `hydra` under test first on the
/// PATH and no HYDRA_* variables from outside.
fn shell(dir: &Path, script: &str) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_hydra")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PATH", path)
        .stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("HYDRA_") {
            c.env_remove(k);
        }
    }
    c
}

/// Runs one README line; returns its output.
fn sh(dir: &Path, line: &str) -> Output {
    shell(dir, line).output().unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn succeeds(dir: &Path, line: &str) -> String {
    let out = sh(dir, line);
    assert!(
        out.status.success(),
        "README line failed: {line}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text(&out)
}

#[test]
fn the_quick_start_runs_as_written() {
    let blocks = quick_start();
    assert_eq!(blocks.len(), 3, "{blocks:?}");

    // The daemon, as `cargo run --release -p hydra -- ARGS` starts it.
    let server = tempfile::tempdir().unwrap();
    let daemon_line = blocks[0]
        .iter()
        .find(|l| l.contains(" -- daemon"))
        .expect("the daemon line");
    let args = daemon_line
        .split('#')
        .next()
        .unwrap()
        .split(" -- ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_hydra"))
        .args(&args)
        .current_dir(server.path())
        .env("HYDRA_HTTP", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(daemon.stdout.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the daemon exited");
        if let Some(url) = line.trim().strip_prefix("listening on http://") {
            break url.to_owned();
        }
    };
    assert!(
        server.path().join("hydra-data").is_dir(),
        "the daemon keeps its data in ./hydra-data"
    );

    // From another terminal.
    let client = tempfile::tempdir().unwrap();
    for line in &blocks[1] {
        let line = line
            .replace("localhost:8080", &addr)
            .replace("127.0.0.1:8080", &addr);
        if line.contains("curl -N") {
            let out = sh(
                client.path(),
                &line.replace("curl -N", "curl -N --max-time 2"),
            );
            // 28: cut by --max-time, as intended for an endless stream.
            assert_eq!(out.status.code(), Some(28), "{line}");
            assert!(text(&out).contains("\"type\":\"Placed\""), "{line}");
        } else {
            let printed = succeeds(client.path(), &line);
            if line.contains("curl -X POST") {
                assert!(printed.contains("\"version\":0"), "{printed}");
            }
            if line.contains("stream read") {
                assert!(printed.contains("Placed"), "{printed}");
            }
        }
    }
    let _ = daemon.kill();
    let _ = daemon.wait();

    // The CLI, embedded, on a directory no daemon holds.
    let cli = tempfile::tempdir().unwrap();
    let d = cli.path();
    std::fs::write(d.join("movie.mkv"), crate::noise(3, 3 << 20)).unwrap();
    std::fs::write(d.join("notes.txt"), "NotesMarker").unwrap();
    let mut last_ref = String::new();
    for line in &blocks[2] {
        let line = line.replace("bafkr4i...", &last_ref);
        let printed = succeeds(d, &line);
        if line.starts_with("hydra block put") {
            last_ref = printed.trim().to_owned();
            assert!(last_ref.starts_with("bafkr4i"), "{printed}");
        }
        if line.contains("stream verify") {
            assert!(printed.starts_with("ok: order-1 version 1"), "{printed}");
        }
        if line.contains("stream read patient-1") {
            assert!(printed.contains("Admitted"), "{printed}");
        }
    }
    assert_eq!(
        std::fs::read(d.join("copy.txt")).unwrap(),
        b"hello\n",
        "block get wrote what block put stored"
    );
    assert_eq!(
        std::fs::read(d.join("out.mkv")).unwrap(),
        std::fs::read(d.join("movie.mkv")).unwrap()
    );
}

/// The README's `sh` block that contains `marker`, as one script.
fn walkthrough(marker: &str) -> String {
    let readme = include_str!("../../../README.md");
    readme
        .split("```sh\n")
        .skip(1)
        .map(|b| &b[..b.find("```").expect("a closed block")])
        .find(|b| b.contains(marker))
        .unwrap_or_else(|| panic!("no README block with {marker}"))
        .to_owned()
}

/// A free loopback port (taken by nobody when this returns, most likely
/// still free when the script binds it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a README walkthrough as one `sh -e` script in `dir`, its fixed
/// ports swapped for free ones; every daemon it starts is stopped at the
/// end (the script runs in a process group of its own). Returns what it
/// printed.
fn run_walkthrough(dir: &Path, script: &str, ports: &[&str]) -> String {
    use std::os::unix::process::CommandExt;
    let mut script = script.to_owned();
    for p in ports {
        script = script.replace(p, &free_port().to_string());
    }
    let script = format!("set -e\n{script}");
    // Files, not pipes: the daemons it leaves running would hold a pipe.
    let (out, err) = (dir.join("walkthrough.out"), dir.join("walkthrough.err"));
    let mut c = shell(dir, &script);
    c.stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .process_group(0);
    let mut child = c.spawn().unwrap();
    let status = child.wait().unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .status();
    let printed = std::fs::read_to_string(&out).unwrap();
    assert!(
        status.success(),
        "the walkthrough failed:\n{script}\n--- stdout\n{printed}\n--- stderr\n{}",
        std::fs::read_to_string(&err).unwrap()
    );
    printed
}

#[test]
fn the_replication_walkthrough_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.pdf"), crate::noise(9, 300_000)).unwrap();
    let printed = run_walkthrough(
        dir.path(),
        &walkthrough("writer.yaml"),
        &["8080", "8081", "4001"],
    );
    assert!(printed.contains("Placed"), "{printed}");
    assert_eq!(
        std::fs::read(dir.path().join("copy.pdf")).unwrap(),
        std::fs::read(dir.path().join("report.pdf")).unwrap()
    );
}

#[test]
fn the_blind_replica_walkthrough_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let printed = run_walkthrough(
        dir.path(),
        &walkthrough("blind.yaml"),
        &["8090", "8091", "8092", "4011", "4012"],
    );
    assert!(printed.contains("Admitted"), "{printed}");
    assert!(
        printed.contains("(the blind peer holds it, cannot read it)"),
        "{printed}"
    );
    // Read twice: on the keyed follower, and restored from the backup.
    assert_eq!(printed.matches("Admitted").count(), 2, "{printed}");
    assert_eq!(
        std::fs::read(dir.path().join("scan-copy.png")).unwrap(),
        std::fs::read(dir.path().join("scan.png")).unwrap()
    );
    // Once the blind daemon has stopped (its directory opens again).
    let blind = dir.path().join("blind-data");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !Command::new(env!("CARGO_BIN_EXE_hydra"))
        .arg("--data")
        .arg(&blind)
        .args(["volume", "info"])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the blind daemon did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let scan = std::fs::read(dir.path().join("scan.png")).unwrap();
    for file in crate::walk(&blind) {
        let bytes = std::fs::read(&file).unwrap();
        for needle in [&b"\"ward\":3"[..], &scan[1000..1032]] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "plaintext in {}",
                file.display()
            );
        }
    }
}

#[test]
fn the_security_walkthrough_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let printed = run_walkthrough(dir.path(), &walkthrough("secure.yaml"), &["8443", "9443"]);
    // The writer's append, the reader's `$all`, the reader's refused
    // append (curl prints no newline after them), redis-cli's ESVER over
    // TLS, and the CLI's read over https.
    assert!(printed.contains("{\"first_version\":0"), "{printed}");
    assert!(printed.contains("\"type\":\"Placed\""), "{printed}");
    assert!(
        printed.contains("{\"error\":\"token reporting lacks scope write:orders-2\"}0\n"),
        "{printed}"
    );
    assert!(printed.contains("orders-1\t0\t0\tPlaced"), "{printed}");
}
