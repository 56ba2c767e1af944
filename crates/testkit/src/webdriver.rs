//! A small W3C WebDriver client for the console's browser tests: it starts Debian's
//! `chromedriver` on a free port and drives Debian's `chromium`, headless, over the
//! WebDriver HTTP protocol (sessions, navigation, elements, keys, dialogs, screenshots,
//! window size, script, the browser's console log). Nothing is downloaded: both
//! binaries come from `scripts/services.sh`. Missing binaries are an error, never a
//! skip.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::Method;
use serde_json::{Value, json};

use crate::client::TestClient;
use crate::harness::Error;

/// The W3C key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium under ChromeDriver; both end when this is dropped.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: TestClient,
}

/// One element on the current page.
#[derive(Debug, Clone)]
pub struct Element {
    id: String,
}

fn free_port() -> Result<u16, Error> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium with a laptop-sized window.
    pub async fn start() -> Result<Self, Error> {
        for bin in [CHROMEDRIVER, CHROMIUM] {
            if !Path::new(bin).exists() {
                return Err(
                    format!("{bin} is missing: scripts/services.sh installs chromium and chromium-driver").into(),
                );
            }
        }
        let port = free_port()?;
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let base = format!("http://127.0.0.1:{port}");
        let client = TestClient::http1();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.request(Method::GET, &format!("{base}/status"), &[], "").await
                && r.status.is_success()
            {
                break;
            }
            if Instant::now() > deadline {
                return Err("chromedriver did not start".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--no-first-run", "--disable-extensions"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let mut b = Self {
            driver,
            base,
            session: String::new(),
            client,
        };
        let v = b.call(Method::POST, "/session", Some(caps)).await?;
        b.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session from chromedriver: {v}"))?
            .to_owned();
        Ok(b)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, Error> {
        let url = format!("{}{path}", self.base);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let r = self
            .client
            .request(method, &url, &[("content-type", "application/json")], body)
            .await?;
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if !r.status.is_success() {
            return Err(format!("webdriver {path}: {} {}", r.status, v["value"]["message"]).into());
        }
        Ok(v.get("value").cloned().unwrap_or(Value::Null).pipe_session(&v))
    }

    async fn s(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, Error> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    pub async fn goto(&self, url: &str) -> Result<(), Error> {
        self.s(Method::POST, "/url", Some(json!({"url": url})))
            .await
            .map(|_| ())
    }

    pub async fn url(&self) -> Result<String, Error> {
        Ok(self
            .s(Method::GET, "/url", None)
            .await?
            .as_str()
            .unwrap_or("")
            .to_owned())
    }

    pub async fn title(&self) -> Result<String, Error> {
        Ok(self
            .s(Method::GET, "/title", None)
            .await?
            .as_str()
            .unwrap_or("")
            .to_owned())
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> Result<String, Error> {
        Ok(self
            .s(Method::GET, "/source", None)
            .await?
            .as_str()
            .unwrap_or("")
            .to_owned())
    }

    /// The first element matching a CSS selector, waiting up to 5 s for it.
    pub async fn find(&self, css: &str) -> Result<Element, Error> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self
                .s(
                    Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await
            {
                Ok(v) => {
                    let id = v[ELEMENT].as_str().ok_or("no element id")?.to_owned();
                    return Ok(Element { id });
                }
                Err(e) if Instant::now() > deadline => return Err(format!("{css}: {e}").into()),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Every element matching a CSS selector now.
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>, Error> {
        let v = self
            .s(
                Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(|id| Element { id: id.to_owned() }))
            .collect())
    }

    pub async fn click(&self, e: &Element) -> Result<(), Error> {
        self.s(Method::POST, &format!("/element/{}/click", e.id), Some(json!({})))
            .await
            .map(|_| ())
    }

    /// Types into an input (after clearing it).
    pub async fn fill(&self, e: &Element, text: &str) -> Result<(), Error> {
        self.s(Method::POST, &format!("/element/{}/clear", e.id), Some(json!({})))
            .await?;
        self.s(
            Method::POST,
            &format!("/element/{}/value", e.id),
            Some(json!({"text": text})),
        )
        .await
        .map(|_| ())
    }

    pub async fn text(&self, e: &Element) -> Result<String, Error> {
        Ok(self
            .s(Method::GET, &format!("/element/{}/text", e.id), None)
            .await?
            .as_str()
            .unwrap_or("")
            .to_owned())
    }

    /// The text of the first element matching `css`.
    pub async fn text_of(&self, css: &str) -> Result<String, Error> {
        let e = self.find(css).await?;
        self.text(&e).await
    }

    /// Waits up to 5 s until the first element matching `css` has text containing
    /// `needle`; returns that text (the last seen, on timeout: an error says it).
    pub async fn wait_text(&self, css: &str, needle: &str) -> Result<String, Error> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(e) = self
                .s(
                    Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await
                && let Some(id) = e[ELEMENT].as_str()
                && let Ok(t) = self.s(Method::GET, &format!("/element/{id}/text"), None).await
            {
                last = t.as_str().unwrap_or("").to_owned();
                if last.contains(needle) {
                    return Ok(last);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("{css}: waited for `{needle}`, saw `{last}`").into())
    }

    /// Selects an `<option>` by its value in the `<select>` matching `css`.
    pub async fn select(&self, css: &str, value: &str) -> Result<(), Error> {
        let option = self.find(&format!("{css} option[value=\"{value}\"]")).await?;
        self.click(&option).await
    }

    /// Accepts the open `confirm()` dialog, waiting up to 2 s for it.
    pub async fn accept_dialog(&self) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.s(Method::POST, "/alert/accept", Some(json!({}))).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Runs a script in the page and returns its result.
    pub async fn run(&self, script: &str) -> Result<Value, Error> {
        self.s(
            Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Presses keys (`\u{E004}` is Tab) on whatever has the focus.
    pub async fn keys(&self, keys: &str) -> Result<(), Error> {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                let k = c.to_string();
                [
                    json!({"type": "keyDown", "value": k}),
                    json!({"type": "keyUp", "value": k}),
                ]
            })
            .collect();
        self.s(
            Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await
        .map(|_| ())
    }

    pub async fn resize(&self, width: u32, height: u32) -> Result<(), Error> {
        self.s(
            Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await
        .map(|_| ())
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) -> Result<(), Error> {
        let v = self.s(Method::GET, "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .map_err(|e| format!("screenshot: {e}"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// The browser console's messages at level SEVERE since the last call (script
    /// errors, Content-Security-Policy violations, failed loads).
    pub async fn errors(&self) -> Result<Vec<String>, Error> {
        let v = self
            .s(Method::POST, "/se/log", Some(json!({"type": "browser"})))
            .await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["level"] == "SEVERE")
            .filter_map(|m| m["message"].as_str().map(str::to_owned))
            .collect())
    }
}

trait PipeSession {
    fn pipe_session(self, whole: &Value) -> Value;
}

impl PipeSession for Value {
    /// `POST /session` answers `{"value": {"sessionId", "capabilities"}}`; keep it whole.
    fn pipe_session(self, whole: &Value) -> Value {
        if self.get("sessionId").is_some() || whole.get("sessionId").is_none() {
            self
        } else {
            whole.clone()
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes Chromium; then the driver goes. Blocking std I/O:
        // a drop cannot await.
        use std::io::{Read as _, Write as _};
        let addr = self.base.trim_start_matches("http://").to_owned();
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
