//! A check that tries to open a TCP connection to the address in its config. Its component
//! imports `wasi:sockets`, which the host links deny-all: the connection must be refused.

wit_bindgen::generate!({ path: "../../../wit/0.1.0", world: "checker" });

use exports::sitewatch::plugin::check::Guest;
use sitewatch::plugin::types::{CheckResult, Response, Verdict};

struct NetClient;

impl Guest for NetClient {
    fn check(config: String, _response: Response) -> Result<CheckResult, String> {
        match std::net::TcpStream::connect(config.trim()) {
            Ok(_) => Ok(CheckResult {
                verdict: Verdict::Fail("connected".into()),
                metrics: vec![],
            }),
            Err(e) => Err(e.to_string()),
        }
    }
}

export!(NetClient);
