//! A check that tries to open a TCP connection. Its component imports `wasi:sockets`, which the
//! host must refuse at load time.

wit_bindgen::generate!({ path: "../../../wit", world: "checker" });

use exports::sitewatch::plugin::check::Guest;
use sitewatch::plugin::types::{CheckResult, Response, Verdict};

struct NetClient;

impl Guest for NetClient {
    fn check(_config: String, _response: Response) -> Result<CheckResult, String> {
        match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => Ok(CheckResult {
                verdict: Verdict::Fail("connected".into()),
                metrics: vec![],
            }),
            Err(e) => Err(e.to_string()),
        }
    }
}

export!(NetClient);
