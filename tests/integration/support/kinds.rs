//! Real servers for the probe kinds' tests, run by `kinds.py` under Debian's `/usr/bin/python3`
//! (the `python3` on PATH may be a pyenv build without Debian's modules): a WebSocket server
//! (python3-websockets) and a gRPC health server (python3-grpcio). Each answers as a state file
//! says, which the test rewrites (`set`); each is stopped when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const PYTHON: &str = "/usr/bin/python3";
const SCRIPT: &str = include_str!("kinds.py");

pub struct PyServer {
    pub port: u16,
    state: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PyServer {
    /// A WebSocket server answering each message with `answer` (`close`: closing instead).
    pub fn websocket(answer: &str) -> Option<Self> {
        Self::start("ws", "websockets", "python3-websockets", answer, None)
    }

    /// A gRPC health server; `state` holds lines `service=STATUS` (`=SERVING` for the server).
    pub fn grpc(state: &str) -> Option<Self> {
        Self::start("grpc", "grpc", "python3-grpcio", state, None)
    }

    /// [`PyServer::websocket`] over TLS with the PEM certificate chain and key given.
    pub fn websocket_tls(answer: &str, cert_pem: &str, key_pem: &str) -> Option<Self> {
        Self::start(
            "ws",
            "websockets",
            "python3-websockets",
            answer,
            Some((cert_pem, key_pem)),
        )
    }

    /// [`PyServer::grpc`] over TLS with the PEM certificate chain and key given.
    pub fn grpc_tls(state: &str, cert_pem: &str, key_pem: &str) -> Option<Self> {
        Self::start(
            "grpc",
            "grpc",
            "python3-grpcio",
            state,
            Some((cert_pem, key_pem)),
        )
    }

    fn start(
        kind: &str,
        module: &str,
        package: &str,
        state: &str,
        tls: Option<(&str, &str)>,
    ) -> Option<Self> {
        let has = Command::new(PYTHON)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has {
            crate::support::skip(
                &format!("{package} (for /usr/bin/python3)"),
                &format!("install it with `apt-get install {package}`"),
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("kinds.py");
        std::fs::write(&script, SCRIPT).unwrap();
        let state_file = dir.path().join("state");
        std::fs::write(&state_file, state).unwrap();
        let mut tls_args = Vec::new();
        if let Some((cert, key)) = tls {
            for (name, pem) in [("cert.pem", cert), ("key.pem", key)] {
                let file = dir.path().join(name);
                std::fs::write(&file, pem).unwrap();
                tls_args.push(file);
            }
        }
        for _ in 0..5 {
            let port = crate::support::closed_port();
            let mut child = Command::new(PYTHON)
                .arg(&script)
                .args([kind, &port.to_string()])
                .arg(&state_file)
                .args(&tls_args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 starts");
            let mut line = String::new();
            let out = child.stdout.take().unwrap();
            let _ = BufReader::new(out).read_line(&mut line);
            if line.trim() == "ready" {
                return Some(Self {
                    port,
                    state: state_file,
                    child,
                    _dir: dir,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the {kind} test server did not start");
    }

    /// What the server answers from now on.
    pub fn set(&self, state: &str) {
        let tmp = self.state.with_extension("new");
        std::fs::write(&tmp, state).unwrap();
        std::fs::rename(&tmp, &self.state).unwrap();
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
