//! Helpers for tests with real parts: network namespaces, veth pairs, processes.
//!
//! Everything a test creates is removed when its guard drops: processes are killed by PID,
//! namespaces deleted (which deletes their veth ends). Names carry the test process's PID and
//! a counter, so tests running in parallel never collide; interface names stay under 15
//! characters.
#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

pub mod cluster;
pub mod rbac;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Whether the tests that need root and the given tools can run. Outside CI, prints one
/// line saying why they are skipped; under `CI=true` a missing prerequisite fails the test.
pub fn prerequisites(tools: &[&str]) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let mut missing: Vec<String> = Vec::new();
    if !is_root() {
        missing.push("root (network namespaces)".into());
    }
    for t in tools {
        if !on_path(t) {
            missing.push(format!("`{t}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("needs {}: run ./scripts/test as root to install and run", missing.join(", "));
    if ci {
        panic!("CI=true and this test {msg}");
    }
    eprintln!("SKIPPED: this test {msg}");
    false
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false)
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short unique name: `prefix` + PID + counter (keep `prefix` to 3 characters).
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}{}{n}", std::process::id() % 100_000)
}

/// Runs a command and returns its output (never panics on failure to run).
pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

/// Runs a command, panicking with its stderr if it fails.
pub fn must(cmd: &str, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(o.status.success(), "{cmd} {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = unique(prefix);
        must("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS args...`, must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        must("ip", &a)
    }

    /// A command inside the namespace.
    pub fn cmd(&self, prog: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]).args(args);
        c
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, prog: &str, args: &[&str]) -> Output {
        self.cmd(prog, args).output().unwrap_or_else(|e| panic!("cannot run {prog}: {e}"))
    }

    /// The MAC address of an interface.
    pub fn mac(&self, ifname: &str) -> String {
        let out = self.ip(&["-o", "link", "show", ifname]);
        let mut words = out.split_whitespace();
        words.find(|w| *w == "link/ether").and_then(|_| words.next()).expect("an Ethernet interface").to_string()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// Joins two namespaces with a veth pair, named `eth0` (or `ifname`) on both sides, up.
pub fn veth(a: &Netns, b: &Netns, ifname: &str) {
    let (x, y) = (unique("va"), unique("vb"));
    must("ip", &["link", "add", &x, "type", "veth", "peer", "name", &y]);
    must("ip", &["link", "set", &x, "netns", &a.name, "name", ifname]);
    must("ip", &["link", "set", &y, "netns", &b.name, "name", ifname]);
    a.ip(&["link", "set", ifname, "up"]);
    b.ip(&["link", "set", ifname, "up"]);
}

/// Namespaces `members` and a client on one bridge (in namespace `sw`), each with `eth0`.
pub fn bridged(members: &[&Netns]) -> Netns {
    let sw = Netns::new("ks");
    sw.ip(&["link", "add", "br0", "type", "bridge"]);
    sw.ip(&["link", "set", "br0", "up"]);
    for (i, m) in members.iter().enumerate() {
        let (x, y) = (unique("vx"), unique("vy"));
        must("ip", &["link", "add", &x, "type", "veth", "peer", "name", &y]);
        must("ip", &["link", "set", &x, "netns", &m.name, "name", "eth0"]);
        let port = format!("p{i}");
        must("ip", &["link", "set", &y, "netns", &sw.name, "name", &port]);
        sw.ip(&["link", "set", &port, "master", "br0", "up"]);
        m.ip(&["link", "set", "eth0", "up"]);
    }
    sw
}

/// A child process killed (by PID) on drop.
pub struct Proc {
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr going to files in `dir`, named after `tag`.
    pub fn spawn(mut cmd: Command, dir: &Path, tag: &str) -> Proc {
        let stdout = dir.join(format!("{tag}.out"));
        let stderr = dir.join(format!("{tag}.err"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn");
        Proc { child, stdout, stderr }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Sends a signal by PID.
    pub fn signal(&self, sig: &str) {
        let _ = run("kill", &[&format!("-{sig}"), &self.pid()]);
    }

    /// Waits for exit, up to `timeout`; returns the exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `f` every 100 ms until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A per-test scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("lb-test-{}", unique(tag)));
        std::fs::create_dir_all(&d).expect("scratch dir");
        Scratch(d)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A BIRD protocol as `birdc show protocols NAME` shows it: its line without the "Since"
/// column, and that column in milliseconds of the day (-1 when absent).
pub fn bird_session(text: &str, proto: &str) -> (String, i64) {
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(proto)).unwrap_or_default();
    let f: Vec<&str> = line.split_whitespace().collect();
    let ms = f.get(4).and_then(|t| {
        let (hms, frac) = t.split_once('.')?;
        let p: Vec<i64> = hms.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
        Some(((p.first()? * 60 + p.get(1)?) * 60 + p.get(2)?) * 1000 + frac.parse::<i64>().ok()?)
    });
    (f.iter().take(4).chain(f.iter().skip(5)).copied().collect::<Vec<_>>().join(" "), ms.unwrap_or(-1))
}

/// Whether two `bird_session` readings are the same session: the same state, and a "Since"
/// within 5 ms. BIRD derives the wall-clock "Since" from its monotonic clock at each
/// display, so it may wobble by a millisecond; a reset moves it by seconds.
pub fn same_bird_session(before: &(String, i64), now: &(String, i64)) -> bool {
    before.1 >= 0 && before.0 == now.0 && (before.1 - now.1).abs() <= 5
}
