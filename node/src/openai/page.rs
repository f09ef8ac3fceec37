//! The chat page at `/`: three static files compiled into the node (no build step,
//! nothing fetched from elsewhere). It talks to this server's own API.

use super::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{header, Response};

/// A static file of the page.
pub struct File {
	content_type: &'static str,
	bytes: &'static [u8],
}

const INDEX: File =
	File { content_type: "text/html; charset=utf-8", bytes: include_bytes!("page/index.html") };
const SCRIPT: File =
	File { content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("page/chat.js") };
const STYLE: File =
	File { content_type: "text/css; charset=utf-8", bytes: include_bytes!("page/chat.css") };

/// The page's file at `path`, if it is one.
pub fn file(path: &str) -> Option<&'static File> {
	match path {
		"/" | "/index.html" => Some(&INDEX),
		"/chat.js" => Some(&SCRIPT),
		"/chat.css" => Some(&STYLE),
		_ => None,
	}
}

/// The file as an answer: the page may load only its own files and talk only to this
/// server (the content security policy says so to the browser).
pub fn response(file: &File) -> Response<Body> {
	let mut response = Response::new(Full::new(Bytes::from_static(file.bytes)).boxed());
	let headers = response.headers_mut();
	headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(file.content_type));
	headers.insert(
		header::CONTENT_SECURITY_POLICY,
		header::HeaderValue::from_static(
			"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
		),
	);
	headers.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
	headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
	response
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn the_page_refers_only_to_files_it_serves() {
		let index = std::str::from_utf8(INDEX.bytes).unwrap();
		for reference in ["/chat.js", "/chat.css"] {
			assert!(index.contains(&format!("\"{reference}\"")), "{reference}");
			assert!(file(reference).is_some(), "{reference}");
		}
		// Nothing from elsewhere: no absolute URLs in the page or its script.
		for text in [index, std::str::from_utf8(SCRIPT.bytes).unwrap()] {
			assert!(!text.contains("http://") && !text.contains("https://"));
		}
		assert!(file("/v1/models").is_none());
	}
}
