//! `helio healthcheck`: whether a running Helio answers `GET /healthz`,
//! as its exit code — for a container's `HEALTHCHECK`, where there is no
//! shell or curl (the image holds the binary alone).
//!
//! One plain-HTTP request over a socket with a deadline, on loopback: a
//! probe needs no TLS, no redirects and no runtime, so it is written out
//! rather than pulling an HTTP client into a command that runs every 30 s.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};

/// The whole probe, connect to last byte, may take this long.
const DEADLINE: Duration = Duration::from_secs(3);

pub fn run(url: &str) -> anyhow::Result<()> {
    let uri: http::Uri = url.parse().with_context(|| format!("{url} is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("{url}: the health check speaks plain http (probe Helio on loopback)");
    }
    let host = uri.host().context("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let address = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, DEADLINE)
        .with_context(|| format!("nothing answers at {address}"))?;
    stream.set_read_timeout(Some(DEADLINE))?;
    stream.set_write_timeout(Some(DEADLINE))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let read = stream.read(&mut head).context("no answer")?;
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status = status_line
        .split_whitespace()
        .nth(1)
        .context("not an HTTP answer")?;
    if status != "200" {
        bail!("{url} answered {status}");
    }
    Ok(())
}
