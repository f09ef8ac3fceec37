//! Helpers for tests that run the built `dllm-node` binary: free ports, a child process
//! stopped on drop, and a small JSON-RPC client over HTTP.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::{
	io::{BufRead, BufReader, Read, Write},
	net::{TcpListener, TcpStream},
	path::PathBuf,
	process::{Child, Command, ExitStatus, Stdio},
	sync::{Arc, Mutex},
	thread,
	time::{Duration, Instant},
};

/// Path of the node binary cargo built for these tests.
pub fn node_binary() -> PathBuf {
	PathBuf::from(env!("CARGO_BIN_EXE_dllm-node"))
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
	TcpListener::bind("127.0.0.1:0")
		.and_then(|listener| listener.local_addr())
		.map(|addr| addr.port())
		.expect("the OS hands out a free port")
}

/// A running node; killed (and its log kept for failure messages) when dropped.
pub struct Node {
	child: Option<Child>,
	/// JSON-RPC port on 127.0.0.1.
	pub rpc_port: u16,
	/// p2p port on 127.0.0.1.
	pub p2p_port: u16,
	log: Arc<Mutex<Vec<String>>>,
}

impl Node {
	/// Starts `dllm-node` with `args` plus free RPC/p2p ports and no telemetry/prometheus.
	pub fn start(args: &[&str]) -> Node {
		let rpc_port = free_port();
		let p2p_port = free_port();
		let mut child = Command::new(node_binary())
			.args(args)
			.args([
				"--rpc-port",
				&rpc_port.to_string(),
				"--port",
				&p2p_port.to_string(),
				"--no-telemetry",
				"--no-prometheus",
				"--no-mdns",
			])
			.stdout(Stdio::null())
			.stderr(Stdio::piped())
			.spawn()
			.expect("dllm-node starts");
		let log = Arc::new(Mutex::new(Vec::new()));
		let stderr = child.stderr.take().expect("stderr is piped");
		let sink = log.clone();
		thread::spawn(move || {
			for line in BufReader::new(stderr).lines().map_while(Result::ok) {
				sink.lock().expect("log lock").push(line);
			}
		});
		let node = Node { child: Some(child), rpc_port, p2p_port, log };
		node.wait_for_rpc(Duration::from_secs(120));
		node
	}

	/// The last lines the node logged, for assertion messages.
	pub fn log_tail(&self) -> String {
		let log = self.log.lock().expect("log lock");
		let start = log.len().saturating_sub(40);
		log[start..].join("\n")
	}

	fn wait_for_rpc(&self, timeout: Duration) {
		let deadline = Instant::now() + timeout;
		while Instant::now() < deadline {
			if self.try_rpc("system_health", json!([])).is_ok() {
				return;
			}
			thread::sleep(Duration::from_millis(200));
		}
		panic!("RPC did not come up on port {}:\n{}", self.rpc_port, self.log_tail());
	}

	/// Calls a JSON-RPC method; `Err` carries a transport or JSON-RPC error message.
	pub fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
		rpc_call(self.rpc_port, method, params)
	}

	/// Calls a JSON-RPC method that must succeed.
	pub fn rpc(&self, method: &str, params: Value) -> Value {
		self.try_rpc(method, params.clone()).unwrap_or_else(|e| {
			panic!("{method}({params}) failed: {e}\nnode log:\n{}", self.log_tail())
		})
	}

	/// Number of the latest finalized block.
	pub fn finalized_number(&self) -> u64 {
		let hash = self.rpc("chain_getFinalizedHead", json!([]));
		let header = self.rpc("chain_getHeader", json!([hash]));
		hex_number(&header["number"])
	}

	/// Waits until the finalized block number reaches `target`.
	pub fn wait_for_finalized(&self, target: u64, timeout: Duration) -> u64 {
		let deadline = Instant::now() + timeout;
		loop {
			let number = self.finalized_number();
			if number >= target {
				return number;
			}
			if Instant::now() > deadline {
				panic!(
					"finalized block stayed at {number} < {target} for {timeout:?}:\n{}",
					self.log_tail()
				);
			}
			thread::sleep(Duration::from_millis(250));
		}
	}

	/// Sends SIGTERM and waits for the node to exit; returns its exit status.
	pub fn stop(mut self) -> ExitStatus {
		let mut child = self.child.take().expect("node is running");
		let pid = child.id().to_string();
		let _ = Command::new("kill").args(["-TERM", &pid]).status();
		let deadline = Instant::now() + Duration::from_secs(60);
		loop {
			if let Some(status) = child.try_wait().expect("wait on node") {
				return status;
			}
			if Instant::now() > deadline {
				let _ = child.kill();
				panic!("node did not stop within 60 s of SIGTERM:\n{}", self.log_tail());
			}
			thread::sleep(Duration::from_millis(100));
		}
	}
}

impl Drop for Node {
	fn drop(&mut self) {
		if let Some(mut child) = self.child.take() {
			let _ = child.kill();
			let _ = child.wait();
		}
	}
}

/// Parses a hex quantity such as `"0x1a"`.
pub fn hex_number(value: &Value) -> u64 {
	let text = value.as_str().expect("hex string");
	u64::from_str_radix(text.trim_start_matches("0x"), 16).expect("hex number")
}

/// One JSON-RPC call over a fresh HTTP/1.1 connection.
pub fn rpc_call(port: u16, method: &str, params: Value) -> Result<Value, String> {
	let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string();
	let mut stream =
		TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
	stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
	let request = format!(
		"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
		 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
		body.len()
	);
	stream.write_all(request.as_bytes()).map_err(|e| format!("send: {e}"))?;
	let mut response = Vec::new();
	stream.read_to_end(&mut response).map_err(|e| format!("receive: {e}"))?;
	let response = String::from_utf8_lossy(&response);
	let (head, payload) =
		response.split_once("\r\n\r\n").ok_or_else(|| "malformed HTTP response".to_string())?;
	let payload = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
		dechunk(payload)
	} else {
		payload.to_string()
	};
	let reply: Value =
		serde_json::from_str(&payload).map_err(|e| format!("bad JSON ({e}): {payload}"))?;
	if let Some(error) = reply.get("error") {
		return Err(error.to_string());
	}
	Ok(reply["result"].clone())
}

fn dechunk(body: &str) -> String {
	let mut out = String::new();
	let mut rest = body;
	while let Some((size, tail)) = rest.split_once("\r\n") {
		let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
		if size == 0 || tail.len() < size {
			break;
		}
		out.push_str(&tail[..size]);
		rest = tail[size..].trim_start_matches("\r\n");
	}
	out
}
