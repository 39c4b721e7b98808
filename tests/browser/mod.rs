//! Headless Chromium driven over the DevTools protocol, for the HTML report's tests: launch,
//! open a page, evaluate script, move and click the mouse as a user would, take a screenshot.
//! The protocol's WebSocket is spoken over std's `TcpStream` (a client's text frames, masked),
//! so the tests need no crate beyond serde_json.

// Each test file uses its own part of these helpers.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The browser to use: `$PETS_CHROMIUM`, else the first of Debian's `chromium` and its usual
/// other names found on `PATH`.
pub fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PETS_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    let names = ["chromium", "chromium-browser", "google-chrome", "chrome"];
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// A WebSocket client connection (RFC 6455), text messages only.
struct Socket(TcpStream);

impl Socket {
    fn connect(port: u16, path: &str) -> Result<Socket, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        // A fixed key is enough: it only proves the server speaks WebSocket.
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).map_err(|e| e.to_string())?;
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        if !head.starts_with("HTTP/1.1 101") {
            return Err(format!("the DevTools socket refused the upgrade: {head}"));
        }
        Ok(Socket(stream))
    }

    fn frame(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n < 65_536 => {
                out.push(0x80 | 126);
                out.extend((n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend((n as u64).to_be_bytes());
            }
        }
        // Clients must mask; the key need not be secret for a local test.
        let mask = [0x5a, 0x17, 0xc3, 0x08];
        out.extend(mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.0.write_all(&out).map_err(|e| e.to_string())
    }

    fn send(&mut self, text: &str) -> Result<(), String> {
        self.frame(0x1, text.as_bytes())
    }

    /// The next text message, its fragments joined; answers pings.
    fn recv(&mut self) -> Result<String, String> {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.read(&mut head)?;
            let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
            let len = match head[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.read(&mut b)?;
                    u16::from_be_bytes(b) as usize
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.read(&mut b)?;
                    u64::from_be_bytes(b) as usize
                }
                n => n as usize,
            };
            let mask = if head[1] & 0x80 != 0 {
                let mut m = [0u8; 4];
                self.read(&mut m)?;
                Some(m)
            } else {
                None
            };
            let mut payload = vec![0u8; len];
            self.read(&mut payload)?;
            if let Some(m) = mask {
                payload
                    .iter_mut()
                    .enumerate()
                    .for_each(|(i, b)| *b ^= m[i % 4]);
            }
            match opcode {
                0x0..=0x2 => message.extend(payload),
                0x8 => return Err("the browser closed the DevTools socket".into()),
                0x9 => self.frame(0xA, &payload)?,
                _ => {}
            }
            if fin && opcode <= 0x2 {
                return String::from_utf8(message).map_err(|e| e.to_string());
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), String> {
        self.0
            .read_exact(buf)
            .map_err(|e| format!("reading the DevTools socket: {e}"))
    }
}

/// One headless Chromium with one page, removed (process and profile) when dropped.
pub struct Browser {
    child: Child,
    profile: PathBuf,
    socket: Socket,
    session: String,
    next_id: u64,
    /// Protocol events received so far (`{"method": …, "params": …}`), oldest first.
    pub events: Vec<Value>,
}

impl Browser {
    /// Starts `binary` headless with a `width`×`height` window and attaches to a blank page.
    pub fn launch(binary: &Path, width: u32, height: u32) -> Result<Browser, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let profile =
            std::env::temp_dir().join(format!("pets-chromium-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&profile).map_err(|e| e.to_string())?;
        let child = Command::new(binary)
            .args([
                "--headless",
                // CI runs as root, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        // Port 0: Chromium picks a free port and writes it (and the browser's socket path) here.
        let active = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let (port, path) = loop {
            let text = std::fs::read_to_string(&active).unwrap_or_default();
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                if let Ok(port) = port.trim().parse::<u16>() {
                    break (port, path.trim().to_string());
                }
            }
            if Instant::now() > deadline {
                let _ = std::fs::remove_dir_all(&profile);
                return Err(format!(
                    "{} wrote no DevToolsActivePort in 60 s",
                    binary.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let socket = Socket::connect(port, &path)?;
        let mut browser = Browser {
            child,
            profile,
            socket,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
        };
        let target =
            browser.browser_call("Target.createTarget", json!({ "url": "about:blank" }))?;
        let target_id = target["targetId"].clone();
        let attached = browser.browser_call(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        )?;
        browser.session = attached["sessionId"]
            .as_str()
            .ok_or("attachToTarget gave no sessionId")?
            .to_string();
        Ok(browser)
    }

    fn send(
        &mut self,
        session: Option<String>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            message["sessionId"] = Value::String(s);
        }
        self.socket.send(&message.to_string())?;
        loop {
            let reply: Value =
                serde_json::from_str(&self.socket.recv()?).map_err(|e| e.to_string())?;
            if reply["id"].as_u64() == Some(id) {
                if let Some(error) = reply.get("error") {
                    return Err(format!("{method}: {error}"));
                }
                return Ok(reply["result"].clone());
            }
            if reply.get("method").is_some() {
                self.events.push(reply);
            }
        }
    }

    fn browser_call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.send(None, method, params)
    }

    /// A protocol command to the page (`Page.navigate`, `Network.enable`, …); its result.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let session = self.session.clone();
        self.send(Some(session), method, params)
    }

    /// The value of a script expression evaluated in the page (promises awaited).
    pub fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let params =
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true });
        let out = self.call("Runtime.evaluate", params)?;
        if let Some(e) = out.get("exceptionDetails") {
            return Err(format!("{expression}: {e}"));
        }
        Ok(out["result"]["value"].clone())
    }

    /// Evaluates `expression` until it is truthy (or `timeout` passes); its last value.
    pub fn wait_for(&mut self, expression: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(expression)?;
            let truthy = !matches!(value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return Ok(value);
            }
            if Instant::now() > deadline {
                return Err(format!("still false after {timeout:?}: {expression}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Opens `url` and waits for the load event.
    pub fn open(&mut self, url: &str) -> Result<(), String> {
        self.call("Page.enable", json!({}))?;
        self.call("Page.navigate", json!({ "url": url }))?;
        self.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(30),
        )?;
        Ok(())
    }

    /// Moves the mouse to (x, y) in the viewport, as the input pipeline does for a real mouse.
    pub fn hover(&mut self, x: f64, y: f64) -> Result<(), String> {
        let params = json!({ "type": "mouseMoved", "x": x, "y": y });
        self.call("Input.dispatchMouseEvent", params).map(drop)
    }

    /// A left click at (x, y).
    pub fn click(&mut self, x: f64, y: f64) -> Result<(), String> {
        for kind in ["mousePressed", "mouseReleased"] {
            let params = json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 });
            self.call("Input.dispatchMouseEvent", params)?;
        }
        Ok(())
    }

    /// The viewport as PNG into `path`.
    pub fn screenshot(&mut self, path: &Path) -> Result<(), String> {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }))?;
        let data = shot["data"]
            .as_str()
            .ok_or("captureScreenshot gave no data")?;
        std::fs::write(path, base64(data)?).map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Browser.close lets Chromium end its own helper processes; the kill is for a hung one.
        let _ = self.browser_call("Browser.close", json!({}));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Standard base64 (the screenshot's encoding) decoded.
fn base64(text: &str) -> Result<Vec<u8>, String> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0u32);
    for c in text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
    {
        let v = value(c).ok_or_else(|| format!("not base64: {:?}", c as char))?;
        bits = (bits << 6) | u32::from(v);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Ok(out)
}

#[test]
fn base64_decodes() {
    assert_eq!(base64("cGV0cw==").unwrap(), b"pets");
    assert_eq!(base64("aGk=").unwrap(), b"hi");
    assert!(base64("a*b").is_err());
}
