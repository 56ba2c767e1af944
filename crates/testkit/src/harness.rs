//! Starts the real `rampart` binary as a child process on random ports and gives tests
//! its addresses, its access log (stdout) and its diagnostic log (stderr), both parsed
//! as JSON lines. The process is killed when the handle is dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::tempdir::TempDir;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

type Lines = Arc<Mutex<Vec<String>>>;

#[derive(Debug)]
pub struct GatewayProcess {
    child: Child,
    pub addrs: HashMap<String, SocketAddr>,
    stdout: Lines,
    stderr: Lines,
    pub dir: TempDir,
    pub config_path: PathBuf,
}

fn pump(reader: impl std::io::Read + Send + 'static, into: Lines) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("RAMPART_TEST_ECHO").is_some() {
                eprintln!("[gateway] {line}");
            }
            into.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
}

fn parse(lines: &Lines) -> Vec<Value> {
    lines
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

impl GatewayProcess {
    /// Writes `config` to a fresh directory (as `rampart.toml`) and runs
    /// `bin serve --config rampart.toml` there. Waits until it logs `ready`.
    pub fn start(bin: &Path, config: &str) -> Result<Self, Error> {
        let dir = TempDir::new("rampart-test")?;
        Self::start_in(bin, config, dir)
    }

    /// Like [`start`](Self::start) in a directory the caller prepared (certificates...).
    pub fn start_in(bin: &Path, config: &str, dir: TempDir) -> Result<Self, Error> {
        Self::start_with_env(bin, config, dir, &[])
    }

    /// Like [`start_in`](Self::start_in) with extra environment variables for the child.
    pub fn start_with_env(bin: &Path, config: &str, dir: TempDir, env: &[(&str, &str)]) -> Result<Self, Error> {
        let config_path = dir.join("rampart.toml");
        std::fs::write(&config_path, config)?;
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("RAMPART_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout: Lines = Arc::default();
        let stderr: Lines = Arc::default();
        if let Some(out) = child.stdout.take() {
            pump(out, Arc::clone(&stdout));
        }
        if let Some(err) = child.stderr.take() {
            pump(err, Arc::clone(&stderr));
        }
        let mut gw = Self {
            child,
            addrs: HashMap::new(),
            stdout,
            stderr,
            dir,
            config_path,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let logs = gw.logs();
            if logs.iter().any(|l| l["message"] == "ready") {
                for l in &logs {
                    if l["message"] == "listening"
                        && let (Some(name), Some(addr)) = (l["listener"].as_str(), l["address"].as_str())
                    {
                        gw.addrs.insert(name.to_owned(), addr.parse()?);
                    }
                }
                return Ok(gw);
            }
            if let Some(status) = gw.child.try_wait()? {
                return Err(format!("gateway exited with {status}; stderr:\n{}", gw.stderr_text()).into());
            }
            if Instant::now() > deadline {
                return Err(format!("gateway did not become ready; stderr:\n{}", gw.stderr_text()).into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self, listener: &str) -> SocketAddr {
        self.addrs
            .get(listener)
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9)))
    }

    /// `http://addr` of a listener.
    pub fn url(&self, listener: &str) -> String {
        format!("http://{}", self.addr(listener))
    }

    pub fn admin_url(&self) -> String {
        self.url("admin")
    }

    /// Access-log lines (stdout) parsed as JSON.
    pub fn access_logs(&self) -> Vec<Value> {
        parse(&self.stdout)
    }

    /// Diagnostic log lines (stderr) parsed as JSON.
    pub fn logs(&self) -> Vec<Value> {
        parse(&self.stderr)
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }

    pub fn stdout_text(&self) -> String {
        self.stdout.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `HUP`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) -> Result<(), Error> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -{name} failed").into())
        }
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits until a stderr line satisfies `pred`.
    pub fn wait_for_log(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(v) = self.logs().into_iter().find(|l| pred(l)) {
                return Some(v);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits until an access-log line satisfies `pred` (lines are written in batches
    /// every 100 ms).
    pub fn wait_for_access_log(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(v) = self.access_logs().into_iter().find(|l| pred(l)) {
                return Some(v);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits until `n` access-log lines were written.
    pub fn wait_for_access_logs(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let logs = self.access_logs();
            if logs.len() >= n || Instant::now() > deadline {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
